/**
 * A language model's answers to the forgotten person's questions, before and after each
 * unlearning run of a deletion request (the `forget_answers` a causal_lm unlearn job
 * keeps while the request is open: workers/jobs/lm.py). Text about a person is personal
 * data: the API blanks it to its count when the request closes (core/deletion/redact.py),
 * and this page shows it only to those who read the request's ids in clear.
 */
import { useQueries } from "@tanstack/react-query";
import type { ReactNode } from "react";
import { Link } from "react-router";

import { api, unwrap } from "../api/client";
import type { DeletionItem, Job } from "../api/types";
import { useCan } from "../auth";
import { ShortId } from "../components/Badges";
import { asVerdict } from "../components/Evidence";

/** `after` is null for a run that did not run its method (the original could not be told apart from strangers). */
export type ForgetAnswer = { sample_id: string; question: string; answer: string; before: string | null; after: string | null };
type Blanked = { redacted: true; count: number };
/** One run of an item: its job, method, and how its verdict ended (null: not judged yet). */
export type Run = { jobId: string; method: string; passed: boolean | null; exact: boolean };

/** The item's runs in order: every judged attempt, then the current run if not among them. */
export function runsOf(item: DeletionItem): Run[] {
  const verdict = asVerdict(item.verdict);
  const runs: Run[] = (verdict?.attempts ?? [])
    .filter((a) => typeof a.job_id === "string")
    .map((a) => ({ jobId: a.job_id as string, method: a.method, passed: a.passed, exact: Boolean(a.exact) }));
  if (item.job_id && !runs.some((r) => r.jobId === item.job_id)) runs.push({ jobId: item.job_id, method: item.method, passed: null, exact: item.exact });
  return runs;
}

/** A job's answers: the list while the request is open, the count once blanked, or null. */
export function answersOf(job: Job | undefined): ForgetAnswer[] | Blanked | null {
  const value = (job?.metrics as Record<string, unknown> | null | undefined)?.forget_answers;
  if (Array.isArray(value)) return value as ForgetAnswer[];
  if (value && typeof value === "object" && (value as Blanked).redacted === true) return value as Blanked;
  return null;
}

/** Whether the run produced a candidate to answer at all (a skipped method leaves every `after` null). */
export function ranMethod(answers: ForgetAnswer[]): boolean {
  return answers.some((a) => a.after !== null && a.after !== undefined);
}

function runLabel(run: Run, ran = true): string {
  if (!ran) return `After: ${run.method} (not run: the original could not be told apart from strangers)`;
  const how = run.passed === null ? "running or not judged yet" : run.exact ? (run.passed ? "exact" : "failed") : run.passed ? "verified" : "refused by the verdict";
  return `After: ${run.method} (${how})`;
}

type Found = { run: Run; answers: ForgetAnswer[] | Blanked };

function ItemAnswers({ item, found, canRead }: { item: DeletionItem; found: Found[]; canRead: boolean }): ReactNode {
  const lists = found.filter((x): x is { run: Run; answers: ForgetAnswer[] } => Array.isArray(x.answers));
  const blanked = found.filter((x) => !Array.isArray(x.answers)).map((x) => x.answers as Blanked);
  const version = (
    <Link to={`/versions/${item.model_version_id}`}>
      <ShortId id={item.model_version_id} />
    </Link>
  );
  if (!lists.length) {
    const count = Math.max(...blanked.map((b) => b.count));
    return (
      <p className="muted" data-testid="answers-redacted">
        Version {version}: the answers to the person's {count} question(s) were removed when the request closed — text about a person is personal data, kept only while the request is open, like the ids.
      </p>
    );
  }
  if (!canRead)
    return (
      <p className="muted" data-testid="answers-hidden">
        Version {version}: the model's answers to the person's questions name the person; they are shown to the compliance and admin roles only.
      </p>
    );
  // The rows of the first run that has them; each run's answers matched by sample id.
  const rows = lists[0].answers;
  const byRun = lists.map((x) => new Map(x.answers.map((a) => [a.sample_id, a])));
  return (
    <div>
      <table className="table" data-testid="answers">
        <caption>
          Version {version}: the person's questions as the version being replaced answered them (before) and as each run's candidate answered them (after), greedy
        </caption>
        <thead>
          <tr>
            <th scope="col">Question</th>
            <th scope="col">On record</th>
            <th scope="col">Before</th>
            {lists.map((x) => (
              <th scope="col" key={x.run.jobId}>
                {runLabel(x.run, ranMethod(x.answers))}
              </th>
            ))}
          </tr>
        </thead>
        <tbody>
          {rows.map((a) => (
            <tr key={a.sample_id}>
              <td>{a.question}</td>
              <td>{a.answer}</td>
              <td>{a.before}</td>
              {byRun.map((m, i) => (
                <td key={lists[i].run.jobId}>{m.get(a.sample_id)?.after ?? (ranMethod(lists[i].answers) ? "—" : "not run")}</td>
              ))}
            </tr>
          ))}
        </tbody>
      </table>
    </div>
  );
}

/** The section, for requests whose runs kept answers (language models); nothing otherwise. */
export function ForgetAnswers({ items }: { items: DeletionItem[] }): ReactNode {
  const canRead = useCan("comply");
  const runs = items.flatMap((item) => runsOf(item).map((run) => ({ item, run })));
  const jobs = useQueries({
    queries: runs.map(({ run }) => ({
      queryKey: ["job", run.jobId],
      queryFn: () => unwrap(api.GET("/api/v1/jobs/{job_id}", { params: { path: { job_id: run.jobId } } })),
    })),
  });
  const perItem = new Map<string, Found[]>();
  runs.forEach(({ item, run }, i) => {
    const answers = answersOf(jobs[i]?.data as Job | undefined);
    if (answers !== null) perItem.set(item.id, [...(perItem.get(item.id) ?? []), { run, answers }]);
  });
  if (!perItem.size) return null;
  return (
    <section aria-labelledby="dr-answers-h" data-testid="forget-answers">
      <h2 id="dr-answers-h">The person's questions, answered before and after</h2>
      {items
        .filter((i) => perItem.has(i.id))
        .map((i) => (
          <ItemAnswers key={i.id} item={i} found={perItem.get(i.id) ?? []} canRead={canRead} />
        ))}
    </section>
  );
}
