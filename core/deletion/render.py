"""A human-readable page for a signed certificate (the JSON stays the thing that is signed)."""

from __future__ import annotations

import html
import json
from typing import Any


def _pct(value: Any) -> str:
    return f"{100 * value:.2f} %" if isinstance(value, int | float) else "—"


def render_html(cert: dict[str, Any]) -> str:
    e = html.escape
    req = cert.get("request", {})
    rows = []
    for m in cert.get("models", []):
        ev = m.get("evaluation") or {}
        checks = (
            "".join(
                f"<li>{'✔' if c['passed'] else '✘'} {e(c['check'])}: {c['value']:.4f} "
                f"(threshold {c['threshold']:.4f})</li>"
                for c in m.get("checks", [])
            )
            or "<li>exact method: no statistical check needed</li>"
        )
        rows.append(
            f"<tr><td><code>{e(str(m.get('old_version_id')))}</code><br><small>sha256 "
            f"{e(str(m.get('old_sha256'))[:16])}…</small></td>"
            f"<td><code>{e(str(m.get('new_version_id')))}</code><br><small>sha256 "
            f"{e(str(m.get('new_sha256'))[:16])}…</small></td>"
            f"<td>{e(m.get('method', ''))} ({'exact' if m.get('exact') else 'approximate'})"
            f"{' after fallback' if m.get('fallback_used') else ''}</td>"
            f"<td>UA {_pct(ev.get('UA'))}, RA {_pct(ev.get('RA'))}, TA {_pct(ev.get('TA'))}, "
            f"MIA {_pct(ev.get('MIA'))}<ul>{checks}</ul></td></tr>"
        )
    steps = "".join(
        f"<li>#{s['seq']} {e(s['action'])} at {e(str(s['at']))}</li>"
        for s in cert.get("audit_steps", [])
    )
    scope = req.get("scope", {})
    sig = cert.get("signature", {})
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<title>Deletion certificate {e(req.get("id", ""))}</title>
<style>body{{font-family:system-ui,sans-serif;max-width:60rem;margin:2rem auto;padding:0 1rem}}
table{{border-collapse:collapse;width:100%}}
td,th{{border:1px solid #ccc;padding:.4rem;vertical-align:top}}
code{{font-size:.85em}}</style></head><body>
<h1>Deletion certificate</h1>
<p>Request <code>{e(req.get("id", ""))}</code> ({e(req.get("legal_basis", ""))}), reference
{e(req.get("requester_reference") or "—")}. Received {e(str(req.get("received_at")))}, due
{e(str(req.get("due_at")))}, completed {e(str(req.get("completed_at")))}.</p>
<p>Outcome: <strong>{e(cert.get("outcome", ""))}</strong>. Scope: {e(scope.get("kind", ""))}
({len(scope.get("commitments", scope.get("labels", [])))} item(s), identifiers shown only as
salted commitments).</p>
<table><tr><th>old version</th><th>new version</th><th>method</th><th>evidence</th></tr>
{"".join(rows) or "<tr><td colspan=4>no model version was trained on this data</td></tr>"}</table>
<h2>Datasets</h2><pre>{e(json.dumps(cert.get("datasets", []), indent=2))}</pre>
<h2>Audit log steps</h2><ul>{steps}</ul>
<p>Signed with Ed25519, key <code>{e(str(sig.get("key_id")))}</code>; verify offline with
<code>expunge certificate verify FILE --public-key KEY.pem</code> (public key at
<code>/api/v1/audit/public-key</code>).</p>
</body></html>"""
