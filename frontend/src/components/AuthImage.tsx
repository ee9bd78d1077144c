import { useEffect, useState, type ReactNode } from "react";

import { fetchWithKey } from "../api/client";

/** An <img> for a URL that needs the Authorization header: fetched as a blob. */
export function AuthImage({ src, alt, size }: { src: string; alt: string; size: number }): ReactNode {
  const [url, setUrl] = useState<string | null>(null);
  const [failed, setFailed] = useState<string | null>(null);
  useEffect(() => {
    const controller = new AbortController();
    let objectUrl: string | null = null;
    setUrl(null);
    setFailed(null);
    fetchWithKey(src, { signal: controller.signal })
      .then((r) => r.blob())
      .then((blob) => {
        objectUrl = URL.createObjectURL(blob);
        setUrl(objectUrl);
      })
      .catch((e: unknown) => {
        if (!controller.signal.aborted) setFailed(e instanceof Error ? e.message : String(e));
      });
    return () => {
      controller.abort();
      if (objectUrl) URL.revokeObjectURL(objectUrl);
    };
  }, [src]);
  if (failed) {
    return (
      <span className="thumb thumb-failed" style={{ width: size, height: size }} title={failed} role="img" aria-label={`${alt}: could not load (${failed})`}>
        !
      </span>
    );
  }
  if (!url) return <span className="thumb thumb-loading" style={{ width: size, height: size }} aria-label={`${alt}: loading`} role="img" />;
  return <img className="thumb" src={url} alt={alt} width={size} height={size} />;
}
