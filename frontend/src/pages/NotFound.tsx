import type { ReactNode } from "react";

export function NotFound(): ReactNode {
  return (
    <section>
      <h1>Not found</h1>
      <p>
        There is no page here. <a href="#/">Go to the overview</a>.
      </p>
    </section>
  );
}
