import { useEffect, useRef, useState, type ReactNode } from "react";

import { Mono } from "./Badges";

/** A secret the API shows once (an API key, a webhook's signing secret): copy it, then
 * say it is stored. Scrolled into view, since the action that made it may be far below. */
export function SecretCard({ title, secret, children, onDone }: { title: string; secret: string; children: ReactNode; onDone: () => void }): ReactNode {
  const [copied, setCopied] = useState(false);
  const card = useRef<HTMLDivElement>(null);
  // Braces: newer browsers return a promise from scrollIntoView, and an effect may only
  // return its cleanup function.
  useEffect(() => {
    void card.current?.scrollIntoView?.({ block: "nearest" });
  }, [secret]);
  return (
    <div className="card secret" role="status" ref={card}>
      <h2>{title}</h2>
      <p>{children}</p>
      <p>
        <Mono>{secret}</Mono>
      </p>
      <div className="actions">
        <button
          type="button"
          onClick={() => {
            void navigator.clipboard?.writeText(secret).then(() => setCopied(true));
          }}
        >
          {copied ? "Copied" : "Copy"}
        </button>
        <button type="button" onClick={onDone}>
          I have stored it
        </button>
      </div>
    </div>
  );
}
