import { useMutation, useQuery, useQueryClient } from "@tanstack/react-query";
import { useState, type ReactNode } from "react";

import { api, unwrap } from "../api/client";
import { requestSchema } from "../api/openapi";
import type { KeyCreate, KeyCreated } from "../api/types";
import { useAuth, useCan } from "../auth";
import { Mono } from "../components/Badges";
import { Pager, useSlicePager } from "../components/Pager";
import { SecretCard } from "../components/SecretCard";
import { Empty, ErrorMessage, QueryView } from "../components/States";
import { Time } from "../components/Time";
import { SchemaForm } from "../forms/SchemaForm";

const CREATE = requestSchema("/api/v1/keys", "post");

function NewSecret({ created, onDone }: { created: KeyCreated; onDone: () => void }): ReactNode {
  return (
    <SecretCard title={`Key "${created.name}" created`} secret={created.key} onDone={onDone}>
      Copy the secret now: <strong>it is shown only once</strong> and cannot be recovered.
    </SecretCard>
  );
}

function RevokeButton({ id, name, self }: { id: string; name: string; self: boolean }): ReactNode {
  const [confirming, setConfirming] = useState(false);
  const queryClient = useQueryClient();
  const revoke = useMutation({
    mutationFn: () => unwrap(api.DELETE("/api/v1/keys/{key_id}", { params: { path: { key_id: id } } })),
    onSuccess: () => void queryClient.invalidateQueries({ queryKey: ["keys"] }),
  });
  if (revoke.error) return <ErrorMessage error={revoke.error} title="Could not revoke" />;
  if (!confirming) {
    return (
      <button type="button" className="danger" onClick={() => setConfirming(true)}>
        Revoke
      </button>
    );
  }
  return (
    <span className="confirm">
      Revoke {name}?{self ? " This is your own key: you will be signed out." : ""}{" "}
      <button type="button" className="danger" onClick={() => revoke.mutate()} disabled={revoke.isPending}>
        Yes, revoke
      </button>{" "}
      <button type="button" onClick={() => setConfirming(false)} autoFocus>
        No
      </button>
    </span>
  );
}

export function Keys(): ReactNode {
  const allowed = useCan("manageKeys");
  const { me } = useAuth();
  const queryClient = useQueryClient();
  const [created, setCreated] = useState<KeyCreated | null>(null);
  const [formKey, setFormKey] = useState(0);
  const keys = useQuery({ queryKey: ["keys"], queryFn: () => unwrap(api.GET("/api/v1/keys")), enabled: allowed });
  const { rows, ...pager } = useSlicePager(keys.data?.data ?? []);
  if (!allowed) {
    return (
      <section>
        <h1>API keys</h1>
        <Empty>Only admins manage API keys.</Empty>
      </section>
    );
  }
  return (
    <section>
      <h1>API keys</h1>
      {created && <NewSecret created={created} onDone={() => setCreated(null)} />}
      <div className="card">
        <h2>Create a key</h2>
        <SchemaForm
          key={formKey}
          label="Create an API key"
          schema={CREATE}
          submitLabel="Create key"
          order={["name", "role"]}
          onSubmit={async (value) => {
            const key = await unwrap(api.POST("/api/v1/keys", { body: value as unknown as KeyCreate }));
            setCreated(key);
            setFormKey((k) => k + 1);
            void queryClient.invalidateQueries({ queryKey: ["keys"] });
          }}
        />
      </div>
      <h2>Keys</h2>
      <QueryView query={keys} what="keys">
        {(list) =>
          list.data.length === 0 ? (
            <Empty>No keys.</Empty>
          ) : (
            <>
            <table className="table">
              <caption className="sr-only">API keys</caption>
              <thead>
                <tr>
                  <th scope="col">Name</th>
                  <th scope="col">Role</th>
                  <th scope="col">Prefix</th>
                  <th scope="col">Created</th>
                  <th scope="col">Revoked</th>
                  <th scope="col">
                    <span className="sr-only">Actions</span>
                  </th>
                </tr>
              </thead>
              <tbody>
                {rows.map((k) => (
                  <tr key={k.id} className={k.revoked_at ? "revoked" : undefined}>
                    <td>{k.name}</td>
                    <td>
                      <span className={`badge role-${k.role}`}>{k.role}</span>
                    </td>
                    <td>
                      <Mono>{k.prefix}</Mono>
                    </td>
                    <td>
                      <Time value={k.created_at} />
                    </td>
                    <td>{k.revoked_at ? <Time value={k.revoked_at} /> : <span className="muted">active</span>}</td>
                    <td>{!k.revoked_at && <RevokeButton id={k.id} name={k.name} self={k.id === me?.id} />}</td>
                  </tr>
                ))}
              </tbody>
            </table>
            <Pager label="API keys" {...pager} />
            </>
          )
        }
      </QueryView>
    </section>
  );
}
