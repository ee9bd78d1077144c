/**
 * What a language model's jobs answer in text: a generate job's completions (one per
 * prompt, `metrics.completions`), and an unlearning run's answers to the forgotten
 * person's questions before and after (`metrics.forget_answers`, kept only while its
 * deletion request is open and blanked to a count when it closes).
 */
import type { ReactNode } from "react";

import type { Job } from "../api/types";
import { useCan } from "../auth";
import { answersOf } from "../pages/DeletionRequestAnswers";

export type Completion = { prompt: string; completion: string };

/** The job's prompts and completions, or null for a job that has none (images, say). */
export function completionsOf(job: Job): Completion[] | null {
  const value = (job.metrics as Record<string, unknown>).completions;
  if (!Array.isArray(value)) return null;
  return value.filter((c): c is Completion => typeof c?.prompt === "string" && typeof c?.completion === "string");
}

export function Completions({ items }: { items: Completion[] }): ReactNode {
  if (!items.length) return <p className="muted">The job completed no prompts.</p>;
  return (
    <table className="table" data-testid="completions">
      <caption>Each prompt and the model's completion</caption>
      <thead>
        <tr>
          <th scope="col">Prompt</th>
          <th scope="col">Completion</th>
        </tr>
      </thead>
      <tbody>
        {items.map((c, i) => (
          <tr key={i}>
            <td>{c.prompt}</td>
            <td className="completion">{c.completion || <span className="muted">(empty)</span>}</td>
          </tr>
        ))}
      </tbody>
    </table>
  );
}

/** An unlearn job's before/after answers, where it kept them; nothing otherwise. */
export function BeforeAfterAnswers({ job }: { job: Job }): ReactNode {
  const canRead = useCan("comply");
  const answers = answersOf(job);
  if (answers === null) return null;
  let body: ReactNode;
  if (!Array.isArray(answers)) {
    body = (
      <p className="muted" data-testid="answers-redacted">
        The answers to the person's {answers.count} question(s) were removed when the deletion request closed: text about a person is personal data, kept only while the request is open.
      </p>
    );
  } else if (!canRead) {
    body = (
      <p className="muted" data-testid="answers-hidden">
        The model's answers to the forgotten person's {answers.length} question(s) name the person; they are shown to the compliance and admin roles only.
      </p>
    );
  } else {
    body = (
      <table className="table" data-testid="before-after">
        <caption>The forgotten person's questions, answered by the original (before) and by this run's result (after), greedy</caption>
        <thead>
          <tr>
            <th scope="col">Question</th>
            <th scope="col">On record</th>
            <th scope="col">Before</th>
            <th scope="col">After</th>
          </tr>
        </thead>
        <tbody>
          {answers.map((a) => (
            <tr key={a.sample_id}>
              <td>{a.question}</td>
              <td>{a.answer}</td>
              <td>{a.before}</td>
              <td>{a.after ?? <span className="muted">not run</span>}</td>
            </tr>
          ))}
        </tbody>
      </table>
    );
  }
  return (
    <section aria-labelledby="answers-h">
      <h2 id="answers-h">Before and after</h2>
      {body}
    </section>
  );
}
