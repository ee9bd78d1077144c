import { useQuery, useQueryClient } from "@tanstack/react-query";
import { createContext, useCallback, useContext, useEffect, useMemo, useState, type ReactNode } from "react";

import { api, authHeaders, setApiKey, setUnauthorizedHandler, unwrap } from "./api/client";
import type { Key, Role } from "./api/types";

const STORAGE = "expunge.apiKey";

type Auth = {
  key: string | null;
  me: Key | undefined;
  role: Role | undefined;
  /** Checks the key with GET /keys/me, then keeps it for this browser session. */
  signIn: (key: string) => Promise<Key>;
  signOut: (reason?: string) => void;
  signedOutReason: string | null;
  meError: unknown;
  refetchMe: () => void;
};

const AuthContext = createContext<Auth | null>(null);

function storedKey(): string | null {
  try {
    return sessionStorage.getItem(STORAGE);
  } catch {
    return null;
  }
}

// Set before the first render so the first queries already carry the key.
setApiKey(storedKey());

export function AuthProvider({ children }: { children: ReactNode }): ReactNode {
  const queryClient = useQueryClient();
  const [key, setKey] = useState<string | null>(storedKey);
  const [signedOutReason, setReason] = useState<string | null>(null);

  const signOut = useCallback(
    (reason?: string) => {
      sessionStorage.removeItem(STORAGE);
      setApiKey(null);
      setKey(null);
      setReason(reason ?? null);
      queryClient.clear();
    },
    [queryClient],
  );

  useEffect(() => {
    setUnauthorizedHandler((message) => signOut(`Signed out: ${message}`));
    return () => setUnauthorizedHandler(null);
  }, [signOut]);

  const me = useQuery({
    queryKey: ["me", key],
    queryFn: () => unwrap(api.GET("/api/v1/keys/me")),
    enabled: key !== null,
    staleTime: 60_000,
  });

  const signIn = useCallback(
    async (candidate: string) => {
      const trimmed = candidate.trim();
      const who = await unwrap(api.GET("/api/v1/keys/me", { headers: authHeaders(trimmed) }));
      sessionStorage.setItem(STORAGE, trimmed);
      setApiKey(trimmed);
      queryClient.setQueryData(["me", trimmed], who);
      setReason(null);
      setKey(trimmed);
      return who;
    },
    [queryClient],
  );

  const value = useMemo<Auth>(
    () => ({
      key,
      me: me.data,
      role: me.data?.role as Role | undefined,
      signIn,
      signOut,
      signedOutReason,
      meError: me.error,
      refetchMe: () => void me.refetch(),
    }),
    [key, me, signIn, signOut, signedOutReason],
  );
  return <AuthContext.Provider value={value}>{children}</AuthContext.Provider>;
}

export function useAuth(): Auth {
  const auth = useContext(AuthContext);
  if (!auth) throw new Error("useAuth outside AuthProvider");
  return auth;
}

/** What a role may do; what it may not is not offered. Mirrors api/deps.py. */
export const CAN = {
  write: (role: Role | undefined) => role === "admin" || role === "engineer",
  manageKeys: (role: Role | undefined) => role === "admin",
  /** File, approve, reject, cancel and extend deletion requests. */
  comply: (role: Role | undefined) => role === "admin" || role === "compliance",
  /** Read the audit log, verify it, sign checkpoints. */
  audit: (role: Role | undefined) => role === "admin" || role === "compliance",
  /** Register webhooks, rotate their secrets, read and retry their deliveries. */
  webhooks: (role: Role | undefined) => role === "admin" || role === "compliance",
};

export function useCan(action: keyof typeof CAN): boolean {
  return CAN[action](useAuth().role);
}
