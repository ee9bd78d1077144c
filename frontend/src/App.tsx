import { lazy, Suspense, type ReactNode } from "react";
import { NavLink, Route, Routes, useNavigate } from "react-router";

import { useAuth, useCan } from "./auth";
import { ErrorMessage, Loading } from "./components/States";
import { DatasetDetail } from "./pages/DatasetDetail";
import { Datasets } from "./pages/Datasets";
import { Audit } from "./pages/Audit";
import { DeletionRequestDetail } from "./pages/DeletionRequestDetail";
import { DeletionRequestNew } from "./pages/DeletionRequestNew";
import { DeletionRequests } from "./pages/DeletionRequests";
import { GenerationDetail, Generations } from "./pages/Generations";
import { Jobs } from "./pages/Jobs";
import { JobSubmit } from "./pages/JobSubmit";
import { Keys } from "./pages/Keys";
import { ModelDetail } from "./pages/ModelDetail";
import { Models } from "./pages/Models";
import { NotFound } from "./pages/NotFound";
import { Overview } from "./pages/Overview";
import { SignIn } from "./pages/SignIn";
import { VersionDetail } from "./pages/VersionDetail";
import { Webhooks } from "./pages/Webhooks";

// The job page carries the charting library; load it when first opened.
const JobDetail = lazy(() => import("./pages/JobDetail").then((m) => ({ default: m.JobDetail })));
const Compare = lazy(() => import("./pages/Compare").then((m) => ({ default: m.Compare })));
const GenerationCompare = lazy(() => import("./pages/GenerationCompare").then((m) => ({ default: m.GenerationCompare })));

function Header(): ReactNode {
  const { me, signOut } = useAuth();
  const navigate = useNavigate();
  return (
    <header className="topbar">
      <a className="brand" href="#/">
        Expunge
      </a>
      <div className="who">
        {me ? (
          <>
            <span>
              Signed in as <strong>{me.name}</strong> <span className={`badge role-${me.role}`}>{me.role}</span>
            </span>
            <button
              type="button"
              onClick={() => {
                signOut();
                navigate("/");
              }}
            >
              Sign out
            </button>
          </>
        ) : null}
      </div>
    </header>
  );
}

function Nav(): ReactNode {
  const manageKeys = useCan("manageKeys");
  const audit = useCan("audit");
  const webhooks = useCan("webhooks");
  const items: [string, string][] = [
    ["/", "Overview"],
    ["/deletion-requests", "Deletion requests"],
    ["/datasets", "Datasets"],
    ["/models", "Models"],
    ["/jobs", "Jobs"],
    ["/compare", "Compare"],
    ["/generations", "Generations"],
  ];
  if (audit) items.push(["/audit", "Audit log"]);
  if (webhooks) items.push(["/webhooks", "Webhooks"]);
  if (manageKeys) items.push(["/keys", "API keys"]);
  return (
    <nav className="sidebar" aria-label="Main">
      <ul>
        {items.map(([to, label]) => (
          <li key={to}>
            <NavLink to={to} end={to === "/"}>
              {label}
            </NavLink>
          </li>
        ))}
      </ul>
    </nav>
  );
}

export function App(): ReactNode {
  const { key, me, signOut } = useAuth();
  if (!key) return <SignIn />;
  if (!me) {
    return (
      <main className="signin">
        <AuthCheck onSignOut={() => signOut()} />
      </main>
    );
  }
  return (
    <div className="shell">
      <a className="skip" href="#main" onClick={(e) => { e.preventDefault(); document.getElementById("main")?.focus(); }}>
        Skip to content
      </a>
      <Header />
      <Nav />
      <main id="main" tabIndex={-1}>
        <Suspense fallback={<Loading what="Loading page" />}>
          <Routes>
            <Route path="/" element={<Overview />} />
            <Route path="/datasets" element={<Datasets />} />
            <Route path="/datasets/:datasetId" element={<DatasetDetail />} />
            <Route path="/models" element={<Models />} />
            <Route path="/models/:modelId" element={<ModelDetail />} />
            <Route path="/versions/:versionId" element={<VersionDetail />} />
            <Route path="/jobs" element={<Jobs />} />
            <Route path="/jobs/new" element={<JobSubmit />} />
            <Route path="/jobs/:jobId" element={<JobDetail />} />
            <Route path="/compare" element={<Compare />} />
            <Route path="/generations" element={<Generations />} />
            <Route path="/generations/compare" element={<GenerationCompare />} />
            <Route path="/generations/:jobId" element={<GenerationDetail />} />
            <Route path="/keys" element={<Keys />} />
            <Route path="/deletion-requests" element={<DeletionRequests />} />
            <Route path="/deletion-requests/new" element={<DeletionRequestNew />} />
            <Route path="/deletion-requests/:requestId" element={<DeletionRequestDetail />} />
            <Route path="/audit" element={<Audit />} />
            <Route path="/webhooks" element={<Webhooks />} />
            <Route path="*" element={<NotFound />} />
          </Routes>
        </Suspense>
      </main>
    </div>
  );
}

/** Between having a key and knowing its role (GET /keys/me). */
function AuthCheck({ onSignOut }: { onSignOut: () => void }): ReactNode {
  const { meError, refetchMe } = useAuth();
  if (meError) {
    return (
      <div className="card narrow">
        <ErrorMessage error={meError} title="Could not check your API key" retry={refetchMe} />
        <button type="button" onClick={onSignOut}>
          Use another key
        </button>
      </div>
    );
  }
  return <Loading what="Checking your API key" />;
}
