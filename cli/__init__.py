"""The `expunge` command: run the service (up, api, worker, migrate, keys) and drive it.

It sits at the top of the import graph, above `api` and `workers`: wiring the app together
is its job, so no layer below has to import upward (pyproject `[tool.importlinter]`)."""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import click

from core.client import ExpungeAPIError, ExpungeClient


def _echo_json(data: Any) -> None:
    click.echo(json.dumps(data, indent=2, default=str))


def _client(ctx: click.Context) -> ExpungeClient:
    return ExpungeClient(ctx.obj.get("url"), ctx.obj.get("key"))


@click.group()
@click.option("--url", envvar="EXPUNGE_URL", default="http://127.0.0.1:8000", show_default=True)
@click.option("--key", envvar="EXPUNGE_API_KEY", default=None, help="API key (or EXPUNGE_API_KEY)")
@click.pass_context
def cli(ctx: click.Context, url: str, key: str | None) -> None:
    """Expunge: machine unlearning as a service."""
    ctx.ensure_object(dict)
    ctx.obj.update(url=url, key=key)


# -- server side ---------------------------------------------------------------------


@cli.command()
def migrate() -> None:
    """Bring the database schema to the latest revision."""
    from core import migrate as m

    m.upgrade()
    click.echo("database is at the latest revision")


@cli.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8000, show_default=True, type=int)
@click.option("--workers", default=1, show_default=True, type=int)
def api(host: str, port: int, workers: int) -> None:
    """Run the API server (production: behind a proxy, many of these)."""
    import uvicorn

    from core.settings import get_settings

    bootstrap = get_settings().bootstrap_admin_key
    if bootstrap:
        _check_admin_key(bootstrap)

    uvicorn.run("api.main:app", host=host, port=port, workers=workers, log_level="info")


def _worker_argv(queues: str, pool: str, concurrency: int) -> list[str]:
    return [
        sys.executable,
        "-m",
        "celery",
        "-A",
        "workers.celery_app",
        "worker",
        "--pool",
        pool,
        "--concurrency",
        str(concurrency),
        "-Q",
        queues,
        "--loglevel",
        "INFO",
        "--without-gossip",
        "--without-mingle",
        "--without-heartbeat",
    ]


@cli.command()
@click.option(
    "--queues", default=None, help="Comma-separated queues (default EXPUNGE_WORKER_QUEUES)"
)
@click.option(
    "--pool", default="solo", show_default=True, type=click.Choice(["solo", "prefork", "threads"])
)
@click.option("--concurrency", default=1, show_default=True, type=int)
def worker(queues: str | None, pool: str, concurrency: int) -> None:
    """Run a Celery worker that executes jobs."""
    from core.settings import get_settings

    os.execv(
        sys.executable, _worker_argv(queues or get_settings().worker_queues, pool, concurrency)
    )


@cli.group()
def keys() -> None:
    """Manage API keys directly in the database (server side)."""


@keys.command("create")
@click.option("--name", required=True)
@click.option(
    "--role", required=True, type=click.Choice(["admin", "compliance", "engineer", "viewer"])
)
def keys_create(name: str, role: str) -> None:
    from api.auth.service import create_key
    from core.db import session_scope

    with session_scope() as session:
        key, raw = create_key(session, name, role, created_by=None)
        click.echo(json.dumps({"id": key.id, "name": name, "role": role, "key": raw}))


@keys.command("list")
def keys_list() -> None:
    from api.auth.service import list_keys
    from core.db import session_scope

    with session_scope() as session:
        for k in list_keys(session):
            state = "revoked" if k.revoked_at else "active"
            click.echo(f"{k.id}\t{k.role}\t{state}\t{k.name}")


@keys.command("revoke")
@click.argument("key_id")
def keys_revoke(key_id: str) -> None:
    from api.auth.service import revoke_key
    from core.db import session_scope

    with session_scope() as session:
        revoke_key(session, key_id)
    click.echo(f"revoked {key_id}")


def _check_admin_key(key: str) -> None:
    """One line on what a valid key looks like, not a traceback from the server's start."""
    from core.settings import admin_key_problem

    if problem := admin_key_problem(key):
        raise click.ClickException(problem)


def _admin_key(home: Path) -> str:
    """The embedded default's admin key: from the environment, else kept in EXPUNGE_HOME."""
    if os.environ.get("EXPUNGE_BOOTSTRAP_ADMIN_KEY"):
        return os.environ["EXPUNGE_BOOTSTRAP_ADMIN_KEY"]
    path = home / "admin.key"
    if path.exists():
        return path.read_text().strip()
    from api.auth.service import generate_secret

    raw = generate_secret()
    home.mkdir(parents=True, exist_ok=True)
    path.write_text(raw + "\n")
    path.chmod(0o600)
    return raw


def _die_with_parent() -> None:
    """Linux: the local worker gets SIGTERM when `expunge up` dies, however it dies
    (uvicorn re-raises SIGTERM after shutdown, so a `finally` alone would not run)."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except OSError:
        pass


@cli.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8000, show_default=True, type=int)
@click.option("--demo/--no-demo", default=True, show_default=True, help="Load the demo data")
@click.option("--worker/--no-worker", "with_worker", default=True, show_default=True)
def up(host: str, port: int, demo: bool, with_worker: bool) -> None:
    """Start everything on the embedded default: SQLite, local files, a local worker."""
    import uvicorn

    from core import migrate as m
    from core.settings import get_settings

    settings = get_settings()
    settings.home.mkdir(parents=True, exist_ok=True)
    key = _admin_key(settings.home)
    _check_admin_key(key)
    os.environ["EXPUNGE_BOOTSTRAP_ADMIN_KEY"] = key
    settings.bootstrap_admin_key = key
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    m.upgrade(settings)

    worker_proc: subprocess.Popen[bytes] | None = None
    if with_worker:
        log_path = settings.home / "worker.log"
        worker_proc = subprocess.Popen(
            _worker_argv("cpu,gpu", "solo", 1),
            preexec_fn=_die_with_parent,
            stdout=log_path.open("ab"),
            stderr=subprocess.STDOUT,
            env=os.environ.copy(),
        )
    url = f"http://{host}:{port}"

    def announce() -> None:
        client = ExpungeClient(url, key)
        for _ in range(600):
            try:
                client.health()
                break
            except Exception:
                time.sleep(0.1)
        click.echo(f"\nExpunge is running at {url}  (API docs: {url}/docs)")
        click.echo(f"Admin API key: {key}")
        click.echo(f"Home: {settings.home}  (worker log: {settings.home / 'worker.log'})\n")
        if demo:
            from core.demo import load_demo

            try:
                created = load_demo(client)
                click.echo(f"Demo data ready: {json.dumps(created)}")
            except Exception as exc:
                click.echo(f"Demo data could not be loaded: {exc}", err=True)

    threading.Thread(target=announce, daemon=True).start()
    from api.app import create_app

    try:
        uvicorn.run(create_app(settings), host=host, port=port, log_level="warning")
    finally:
        if worker_proc is not None:
            worker_proc.send_signal(signal.SIGTERM)
            try:
                worker_proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                worker_proc.kill()


# -- client side ---------------------------------------------------------------------


@cli.group()
def datasets() -> None:
    """Datasets and their samples."""


@datasets.command("sources")
@click.pass_context
def datasets_sources(ctx: click.Context) -> None:
    _echo_json(_client(ctx).dataset_sources())


@datasets.command("list")
@click.pass_context
def datasets_list(ctx: click.Context) -> None:
    _echo_json(_client(ctx).datasets())


@datasets.command("create")
@click.option("--name", required=True)
@click.option(
    "--builtin", "source", required=True, help="A built-in source (see `datasets sources`)"
)
@click.option("--limit", type=int, default=None)
@click.pass_context
def datasets_create(ctx: click.Context, name: str, source: str, limit: int | None) -> None:
    _echo_json(_client(ctx).create_dataset(name, source, limit))


@datasets.command("upload")
@click.argument("archive", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--name", required=True)
@click.pass_context
def datasets_upload(ctx: click.Context, archive: Path, name: str) -> None:
    _echo_json(_client(ctx).upload_dataset(name, archive))


@datasets.command("import-manifest")
@click.argument("manifest", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--base-dir", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--name", required=True)
def datasets_import_manifest(manifest: Path, base_dir: Path | None, name: str) -> None:
    """Server side: import a CSV/Parquet manifest (path,label,subject_id,caption,split)
    whose image paths are relative to --base-dir (default: the manifest's folder)."""
    from api.datasets.service import import_local_manifest
    from core.db import session_scope
    from core.settings import get_settings
    from core.storage import open_store

    settings = get_settings()
    store = open_store(
        settings.storage_url, settings.s3_access_key, settings.s3_secret_key, settings.s3_region
    )
    with session_scope() as session:
        dataset = import_local_manifest(
            session, store, manifest, base_dir or manifest.parent, name, created_by=None
        )
        click.echo(json.dumps({"id": dataset.id, "name": dataset.name}))


@datasets.command("show")
@click.argument("dataset_id")
@click.pass_context
def datasets_show(ctx: click.Context, dataset_id: str) -> None:
    _echo_json(_client(ctx).dataset(dataset_id))


@datasets.command("samples")
@click.argument("dataset_id")
@click.option("--label", type=int, default=None)
@click.option("--subject-id", default=None)
@click.option("--limit", type=int, default=20)
@click.pass_context
def datasets_samples(
    ctx: click.Context, dataset_id: str, label: int | None, subject_id: str | None, limit: int
) -> None:
    _echo_json(_client(ctx).samples(dataset_id, label=label, subject_id=subject_id, limit=limit))


@cli.group()
def models() -> None:
    """Models, versions, checkpoints and lineage."""


@models.command("list")
@click.pass_context
def models_list(ctx: click.Context) -> None:
    _echo_json(_client(ctx).models())


@models.command("create")
@click.option("--name", required=True)
@click.option(
    "--arch", required=True, help='Architecture JSON, e.g. {"name":"small_cnn","num_classes":10}'
)
@click.pass_context
def models_create(ctx: click.Context, name: str, arch: str) -> None:
    _echo_json(_client(ctx).create_model(name, json.loads(arch)))


@models.command("upload")
@click.argument("model_id")
@click.argument("checkpoint", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.pass_context
def models_upload(ctx: click.Context, model_id: str, checkpoint: Path) -> None:
    _echo_json(_client(ctx).upload_checkpoint(model_id, checkpoint))


@models.command("versions")
@click.argument("model_id")
@click.pass_context
def models_versions(ctx: click.Context, model_id: str) -> None:
    _echo_json(_client(ctx).versions(model_id))


@models.command("lineage")
@click.argument("version_id")
@click.pass_context
def models_lineage(ctx: click.Context, version_id: str) -> None:
    _echo_json(_client(ctx).lineage(version_id))


@models.command("download")
@click.argument("version_id")
@click.option("-o", "--output", type=click.Path(path_type=Path), required=True)
@click.pass_context
def models_download(ctx: click.Context, version_id: str, output: Path) -> None:
    _client(ctx).download_checkpoint(version_id, output)
    click.echo(str(output))


@cli.group()
def jobs() -> None:
    """Submit, list, watch and cancel jobs."""


@jobs.command("list")
@click.option("--kind", default=None)
@click.option("--state", default=None)
@click.pass_context
def jobs_list(ctx: click.Context, kind: str | None, state: str | None) -> None:
    _echo_json(_client(ctx).jobs(kind=kind, state=state))


@jobs.command("train")
@click.option("--model", "model_id", required=True)
@click.option("--dataset", "dataset_id", required=True)
@click.option("--params", default="{}", help="TrainParams as JSON")
@click.option("--watch/--no-watch", default=False)
@click.pass_context
def jobs_train(
    ctx: click.Context, model_id: str, dataset_id: str, params: str, watch: bool
) -> None:
    client = _client(ctx)
    job = client.train(model_id, dataset_id, json.loads(params))
    _echo_json(job)
    if watch:
        _watch(client, job["id"])


@jobs.command("show")
@click.argument("job_id")
@click.pass_context
def jobs_show(ctx: click.Context, job_id: str) -> None:
    _echo_json(_client(ctx).job(job_id))


@jobs.command("cancel")
@click.argument("job_id")
@click.pass_context
def jobs_cancel(ctx: click.Context, job_id: str) -> None:
    _echo_json(_client(ctx).cancel_job(job_id))


@jobs.command("logs")
@click.argument("job_id")
@click.pass_context
def jobs_logs(ctx: click.Context, job_id: str) -> None:
    for event in _client(ctx).job_logs(job_id)["data"]:
        data = event["data"]
        click.echo(f"{event['created_at']}  {data.get('message') or data}")


def _watch(client: ExpungeClient, job_id: str) -> None:
    for event in client.job_events(job_id):
        kind, data = event.get("event"), event["data"]
        if kind == "progress":
            click.echo(f"\rprogress {data['progress'] * 100:5.1f}%", nl=False)
        elif kind == "log":
            click.echo(f"\n{data['message']}")
        elif kind == "metric":
            click.echo(f"\n{data['name']} = {data['value']:.4f}")
        else:
            click.echo(f"\n[{kind}] {json.dumps(data)}")


@jobs.command("watch")
@click.argument("job_id")
@click.pass_context
def jobs_watch(ctx: click.Context, job_id: str) -> None:
    _watch(_client(ctx), job_id)


# -- audit log and certificates (offline verification needs no server) ---------------


@cli.group()
def audit() -> None:
    """The tamper-evident audit log: export it, verify an export offline."""


def _read_keys(paths: tuple[Path, ...]) -> list[str]:
    return [p.read_text() for p in paths]


def _print_report(report: Any, as_json: bool) -> None:
    if as_json:
        _echo_json(report.as_dict())
        return
    mark = "OK " if report.ok else "FAILED "
    click.echo(mark + report.reason)
    if not report.ok and report.first_bad_seq is not None:
        click.echo(f"first bad position: {report.first_bad_seq}")
    if report.ok:
        click.echo(f"events: {report.size}  root: {report.root_hash}")
        click.echo(
            f"signed checkpoints verified: {report.checkpoints_verified} "
            f"(covering the first {report.signed_size} events)"
        )


@audit.command("verify")
@click.argument("export_file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option(
    "--public-key",
    "public_keys",
    multiple=True,
    required=True,
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="PEM public key to trust (repeat for keys used before a rotation)",
)
@click.option(
    "--checkpoint",
    "kept",
    multiple=True,
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="A checkpoint JSON kept from earlier: the export must still contain its tree",
)
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON")
def audit_verify(
    export_file: Path, public_keys: tuple[Path, ...], kept: tuple[Path, ...], as_json: bool
) -> None:
    """Verify an audit export offline, with only the export and the public key.

    Exits 0 when every hash, link and signed checkpoint checks out, 1 otherwise.
    """
    from core.audit.verify import checkpoint_from_json, verify_export

    trusted = []
    for path in kept:
        data = json.loads(path.read_text())
        trusted.append(checkpoint_from_json(data.get("checkpoint", data)))
    with export_file.open(encoding="utf-8") as fh:
        report = verify_export(fh, _read_keys(public_keys), trusted_checkpoints=trusted)
    _print_report(report, as_json)
    sys.exit(0 if report.ok else 1)


@audit.command("export")
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False, path_type=Path))
@click.option(
    "--checkpoint/--no-checkpoint",
    default=True,
    show_default=True,
    help="Sign the current tree head first, so the export ends on a signed checkpoint",
)
@click.option(
    "--local",
    is_flag=True,
    help="Read this deployment's database directly (server side) instead of the API",
)
@click.pass_context
def audit_export(ctx: click.Context, output: Path, checkpoint: bool, local: bool) -> None:
    """Write the whole audit log as JSON lines (events and signed checkpoints)."""
    tmp = output.with_name(output.name + ".partial")
    try:
        if local:
            from core.audit import log as audit_log
            from core.db import session_scope
            from core.settings import get_settings
            from core.signing import load_signer

            settings = get_settings()
            if checkpoint:
                with session_scope(settings) as session:
                    audit_log.checkpoint(session, load_signer(settings))
            with session_scope(settings) as session, tmp.open("w", encoding="utf-8") as fh:
                for line in audit_log.export(session):
                    fh.write(line)
        else:
            client = _client(ctx)
            if checkpoint:
                client.post("/audit/checkpoints")
            with client.http.stream("GET", "/audit/export") as response, tmp.open("wb") as fh:
                if response.status_code >= 400:
                    response.read()
                    client._check(response)
                for chunk in response.iter_bytes():
                    fh.write(chunk)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    tmp.replace(output)  # never leave a half-written export under the real name
    click.echo(str(output))


@audit.command("public-key")
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), default=None)
@click.option("--local", is_flag=True, help="This deployment's key (server side), not the API's")
@click.pass_context
def audit_public_key(ctx: click.Context, output: Path | None, local: bool) -> None:
    """The PEM public key that signs checkpoints and certificates."""
    if local:
        from core.settings import get_settings
        from core.signing import load_signer

        pem = load_signer(get_settings()).public_key_pem()
    else:
        pem = _client(ctx).get("/audit/public-key")
        pem = pem.decode() if isinstance(pem, bytes) else str(pem)
    if output is None:
        click.echo(pem, nl=False)
    else:
        output.write_text(pem)
        click.echo(str(output))


@cli.group()
def certificate() -> None:
    """Deletion certificates."""


@certificate.command("verify")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option(
    "--public-key",
    "public_keys",
    multiple=True,
    required=True,
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="PEM public key to trust (GET /api/v1/audit/public-key)",
)
@click.option(
    "--audit-export",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=None,
    help="Also check the certificate's audit steps against this verified audit export",
)
@click.option(
    "--anchor",
    "anchor_file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=None,
    help="The certificate's anchor (GET /api/v1/audit/certificates/ID/anchor): its audit "
    "event, signed checkpoint and inclusion proof",
)
def certificate_verify(
    file: Path, public_keys: tuple[Path, ...], audit_export: Path | None, anchor_file: Path | None
) -> None:
    """Check a certificate offline: its signature, and its audit-log anchoring.

    With --anchor (or a saved {"document": ..., "anchor": ...} bundle), the certificate's
    own audit event is proven in a signed checkpoint; with --audit-export as well, an
    export cut short before that event (or rewritten below it) fails.
    Exits 0 when every check passes, 1 otherwise.
    """
    from core.audit.anchor import check_certificate

    try:
        cert = json.loads(file.read_text())
    except ValueError as exc:
        click.echo(f"FAILED not a JSON certificate: {exc}")
        sys.exit(1)
    # The API's certificate endpoint returns the signed document itself; a saved copy
    # may also wrap it as {"document": ..., "anchor": ...}.
    anchor = None
    if isinstance(cert, dict) and "document" in cert and "signature" not in cert:
        anchor = cert.get("anchor") if isinstance(cert.get("anchor"), dict) else None
        cert = cert["document"]
    if anchor_file is not None:
        try:
            anchor = json.loads(anchor_file.read_text())
        except ValueError as exc:
            click.echo(f"FAILED the anchor is not JSON: {exc}")
            sys.exit(1)
    if anchor is not None and "format" not in anchor:
        anchor = None  # a certificate from before anchoring: audit_seq and sha256 only
    if not isinstance(cert, dict):
        click.echo("FAILED not a JSON certificate object")
        sys.exit(1)
    results = check_certificate(cert, _read_keys(public_keys), audit_export, anchor)
    for passed, what in results:
        click.echo(("OK " if passed else "FAILED ") + what)
    sys.exit(0 if results and all(passed for passed, _ in results) else 1)


def main() -> None:
    try:
        cli(obj={})
    except ExpungeAPIError as exc:
        click.echo(f"error {exc.status}: {exc.detail}", err=True)
        sys.exit(1)
