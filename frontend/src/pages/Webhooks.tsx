import { useMutation, useQuery, useQueryClient } from "@tanstack/react-query";
import { useState, type ReactNode } from "react";

import { api, unwrap } from "../api/client";
import { requestSchema } from "../api/openapi";
import type { Delivery, Webhook, WebhookCreate, WebhookCreated } from "../api/types";
import { useAuth, useCan } from "../auth";
import { Mono, StateBadge } from "../components/Badges";
import { Pager, useSlicePager } from "../components/Pager";
import { SecretCard } from "../components/SecretCard";
import { Empty, ErrorMessage, QueryView } from "../components/States";
import { Time } from "../components/Time";
import { SchemaForm } from "../forms/SchemaForm";

const CREATE = requestSchema("/api/v1/webhooks", "post");
const LIST = ["webhooks"];
const deliveriesKey = (id: string) => ["webhooks", id, "deliveries"];

/** A secret the API shows once: after creating a webhook and after rotating its secret. */
type Shown = { hook: WebhookCreated; rotated: boolean };

function NewSecret({ shown, onDone }: { shown: Shown; onDone: () => void }): ReactNode {
  const { hook, rotated } = shown;
  return (
    <SecretCard title={rotated ? `New secret for ${hook.url}` : `Webhook for ${hook.url} created`} secret={hook.secret} onDone={onDone}>
      Copy the signing secret now: <strong>it is shown only once</strong> and cannot be recovered. Receivers check{" "}
      <Mono>X-Expunge-Signature</Mono> with it.
      {rotated && " The old secret no longer verifies any delivery."}
    </SecretCard>
  );
}

/** Two-step action: the first click only asks; the question says what cannot be undone. */
function ConfirmButton({
  label,
  hidden,
  question,
  yes,
  pending,
  onYes,
}: {
  label: string;
  /** Read by screen readers after the label, to tell the rows' buttons apart. */
  hidden: string;
  question: ReactNode;
  yes: string;
  pending: boolean;
  onYes: () => void;
}): ReactNode {
  const [confirming, setConfirming] = useState(false);
  if (!confirming) {
    return (
      <button type="button" className="danger" onClick={() => setConfirming(true)} disabled={pending}>
        {label}
        <span className="sr-only"> {hidden}</span>
      </button>
    );
  }
  return (
    <span className="confirm">
      {question}{" "}
      <button
        type="button"
        className="danger"
        onClick={() => {
          setConfirming(false);
          onYes();
        }}
      >
        {yes}
      </button>{" "}
      <button type="button" onClick={() => setConfirming(false)} autoFocus>
        No
      </button>
    </span>
  );
}

function RetryButton({ hook, delivery }: { hook: Webhook; delivery: Delivery }): ReactNode {
  const queryClient = useQueryClient();
  const retry = useMutation({
    mutationFn: () =>
      unwrap(
        api.POST("/api/v1/webhooks/{webhook_id}/deliveries/{delivery_id}/retry", {
          params: { path: { webhook_id: hook.id, delivery_id: delivery.id } },
        }),
      ),
    onSuccess: () => void queryClient.invalidateQueries({ queryKey: deliveriesKey(hook.id) }),
  });
  if (retry.error) return <ErrorMessage error={retry.error} title="Could not retry" />;
  return (
    <button type="button" onClick={() => retry.mutate()} disabled={retry.isPending}>
      Retry
      <span className="sr-only"> delivery {delivery.id}</span>
    </button>
  );
}

function LastAnswer({ delivery }: { delivery: Delivery }): ReactNode {
  if (delivery.last_status === null && !delivery.last_error) return <span className="muted">—</span>;
  return (
    <>
      {delivery.last_status !== null && <Mono>HTTP {delivery.last_status}</Mono>}
      {delivery.last_status !== null && delivery.last_error && " "}
      {delivery.last_error && <span className="bad-text">{delivery.last_error}</span>}
    </>
  );
}

function NextOrDelivered({ delivery }: { delivery: Delivery }): ReactNode {
  if (delivery.state === "delivered") {
    return (
      <>
        delivered <Time value={delivery.delivered_at} />
      </>
    );
  }
  if (delivery.state === "failed") return <span className="muted">gave up</span>;
  return (
    <>
      next <Time value={delivery.next_attempt_at} />
    </>
  );
}

/** The webhook's latest deliveries (the API's default 100, newest first). */
function Deliveries({ hook }: { hook: Webhook }): ReactNode {
  const deliveries = useQuery({
    queryKey: deliveriesKey(hook.id),
    queryFn: () => unwrap(api.GET("/api/v1/webhooks/{webhook_id}/deliveries", { params: { path: { webhook_id: hook.id } } })),
  });
  return (
    <QueryView query={deliveries} what="deliveries">
      {(list) =>
        list.data.length === 0 ? (
          <Empty>Nothing sent to {hook.url} yet.</Empty>
        ) : (
          <table className="table">
            <caption>Deliveries to {hook.url}, newest first</caption>
            <thead>
              <tr>
                <th scope="col">Event</th>
                <th scope="col">State</th>
                <th scope="col" className="num">
                  Attempts
                </th>
                <th scope="col">Last answer</th>
                <th scope="col">Next attempt or delivered</th>
                <th scope="col">Created</th>
                <th scope="col">
                  <span className="sr-only">Actions</span>
                </th>
              </tr>
            </thead>
            <tbody>
              {list.data.map((d) => (
                <tr key={d.id}>
                  <td>
                    <Mono title={d.id}>{d.event}</Mono>
                  </td>
                  <td>
                    <StateBadge state={d.state} />
                  </td>
                  <td className="num">{d.attempts}</td>
                  <td>
                    <LastAnswer delivery={d} />
                  </td>
                  <td>
                    <NextOrDelivered delivery={d} />
                  </td>
                  <td>
                    <Time value={d.created_at} />
                  </td>
                  <td>{d.state === "failed" && <RetryButton hook={hook} delivery={d} />}</td>
                </tr>
              ))}
            </tbody>
          </table>
        )
      }
    </QueryView>
  );
}

function WebhookRow({ hook, onSecret }: { hook: Webhook; onSecret: (shown: Shown) => void }): ReactNode {
  const [open, setOpen] = useState(false);
  const queryClient = useQueryClient();
  const path = { params: { path: { webhook_id: hook.id } } };
  const toggle = useMutation({
    mutationFn: () => unwrap(api.PATCH("/api/v1/webhooks/{webhook_id}", { ...path, body: { active: !hook.active } })),
    onSuccess: () => void queryClient.invalidateQueries({ queryKey: LIST }),
  });
  const rotate = useMutation({
    mutationFn: () => unwrap(api.POST("/api/v1/webhooks/{webhook_id}/rotate-secret", path)),
    onSuccess: (rotated) => onSecret({ hook: rotated, rotated: true }),
  });
  const remove = useMutation({
    mutationFn: () => unwrap(api.DELETE("/api/v1/webhooks/{webhook_id}", path)),
    onSuccess: () => void queryClient.invalidateQueries({ queryKey: LIST }),
  });
  const failure = toggle.error ?? rotate.error ?? remove.error;
  const panel = `deliveries-${hook.id}`;
  return (
    <>
      <tr className={hook.active ? undefined : "revoked"}>
        <td>
          <Mono>{hook.url}</Mono>
          {hook.description && <div className="muted">{hook.description}</div>}
        </td>
        <td>
          {hook.events.length === 0 ? (
            <span className="muted">all events</span>
          ) : (
            <ul className="plain">
              {hook.events.map((e) => (
                <li key={e}>
                  <Mono>{e}</Mono>
                </li>
              ))}
            </ul>
          )}
        </td>
        <td>
          <StateBadge state={hook.active ? "active" : "inactive"} />
        </td>
        <td>
          <Time value={hook.created_at} />
        </td>
        <td>
          <div className="actions">
            <button type="button" aria-expanded={open} aria-controls={panel} onClick={() => setOpen(!open)}>
              Deliveries
              <span className="sr-only"> of {hook.url}</span>
            </button>
            <button type="button" onClick={() => toggle.mutate()} disabled={toggle.isPending}>
              {hook.active ? "Deactivate" : "Activate"}
              <span className="sr-only"> {hook.url}</span>
            </button>
            <ConfirmButton
              label="Rotate secret"
              hidden={`of ${hook.url}`}
              question={`Rotate the secret of ${hook.url}? The old secret stops working at once: deliveries not yet sent, retries included, are signed with the new one.`}
              yes="Yes, rotate"
              pending={rotate.isPending}
              onYes={() => rotate.mutate()}
            />
            <ConfirmButton
              label="Delete"
              hidden={hook.url}
              question={`Delete ${hook.url} and its delivery history? Pending deliveries are never sent.`}
              yes="Yes, delete"
              pending={remove.isPending}
              onYes={() => remove.mutate()}
            />
          </div>
          {failure !== null && <ErrorMessage error={failure} title="The API refused this" />}
        </td>
      </tr>
      {open && (
        <tr id={panel}>
          <td colSpan={5}>
            <Deliveries hook={hook} />
          </td>
        </tr>
      )}
    </>
  );
}

export function Webhooks(): ReactNode {
  const allowed = useCan("webhooks");
  const { role } = useAuth();
  const queryClient = useQueryClient();
  const [shown, setShown] = useState<Shown | null>(null);
  const [formKey, setFormKey] = useState(0);
  const hooks = useQuery({ queryKey: LIST, queryFn: () => unwrap(api.GET("/api/v1/webhooks")), enabled: allowed });
  const { rows, ...pager } = useSlicePager(hooks.data?.data ?? []);
  if (!allowed) {
    return (
      <section>
        <h1>Webhooks</h1>
        <Empty>
          Only compliance officers and admins manage webhooks (the receivers of signed deletion-request events). This key's role is{" "}
          {role ?? "unknown"}; ask an admin for a compliance key.
        </Empty>
      </section>
    );
  }
  return (
    <section>
      <h1>Webhooks</h1>
      {shown && <NewSecret key={shown.hook.secret} shown={shown} onDone={() => setShown(null)} />}
      <div className="card">
        <h2>Register a webhook</h2>
        <p className="muted">
          Deliveries are POSTed with <Mono>X-Expunge-Signature</Mono>, an HMAC-SHA256 under the webhook's secret; see the
          Webhooks section of docs/deletion.md for the check. Tick no event to receive every one.
        </p>
        <SchemaForm
          key={formKey}
          label="Register a webhook"
          schema={CREATE}
          submitLabel="Create webhook"
          order={["url", "events", "description", "active"]}
          onSubmit={async (value) => {
            const hook = await unwrap(api.POST("/api/v1/webhooks", { body: value as unknown as WebhookCreate }));
            setShown({ hook, rotated: false });
            setFormKey((k) => k + 1);
            void queryClient.invalidateQueries({ queryKey: LIST });
          }}
        />
      </div>
      <h2>Webhooks</h2>
      <QueryView query={hooks} what="webhooks">
        {(list) =>
          list.data.length === 0 ? (
            <Empty>No webhooks.</Empty>
          ) : (
            <>
              <table className="table">
                <caption className="sr-only">Webhooks</caption>
                <thead>
                  <tr>
                    <th scope="col">URL</th>
                    <th scope="col">Events</th>
                    <th scope="col">Active</th>
                    <th scope="col">Created</th>
                    <th scope="col">
                      <span className="sr-only">Actions</span>
                    </th>
                  </tr>
                </thead>
                <tbody>
                  {rows.map((h) => (
                    <WebhookRow key={h.id} hook={h} onSecret={setShown} />
                  ))}
                </tbody>
              </table>
              <Pager label="Webhooks" {...pager} />
            </>
          )
        }
      </QueryView>
    </section>
  );
}
