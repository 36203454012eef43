"""`llmops keys` (API keys with roles) and `llmops audit` (the audit trail)."""

from datetime import UTC, datetime
from typing import Annotated

import typer

from llmops.commands import one_line_errors

SecretBlock = Annotated[
    str | None,
    typer.Option(
        envvar="LLMOPS_KEYS_SECRET_BLOCK",
        help="Keep keys in this Prefect Secret block (team stack) instead of <home>/keys.json.",
    ),
]

keys = typer.Typer(
    help="API keys for `llmops serve`, each with a role: inference (chat, completions, models), "
    "feedback (feedback only) or admin (everything, /v1/admin/* too). Stored hashed; a key is "
    "shown once, when created. A running server picks up changes within its keys_refresh_seconds.",
    epilog="Example: KEY=$(llmops keys create --name web-app --role inference "
    "--requests-per-minute 60 --tokens-per-day 200000); clients then send "
    "'Authorization: Bearer $KEY' (the OpenAI client's api_key). Past a limit the server answers "
    "429 with Retry-After.",
    no_args_is_help=True,
)
audit = typer.Typer(
    help="The audit trail: promotions, rollbacks, approvals, key changes and admin calls, "
    "hash-chained in <home>/audit.jsonl.",
    epilog="Examples: llmops audit --model llmops-assistant (the model's history); "
    "llmops audit verify (exit 1 if any entry was changed, dropped or reordered).",
    invoke_without_command=True,
)


def register(app: typer.Typer) -> None:
    """Add this area's subcommands to the `llmops` app."""
    app.add_typer(keys, name="keys")
    app.add_typer(audit, name="audit")


@keys.command("create")
def create(
    name: Annotated[str, typer.Option(help="Who or what uses the key (letters, digits, _.@-).")],
    role: Annotated[str, typer.Option(help="inference, feedback or admin.")] = "inference",
    expires: Annotated[
        float | None, typer.Option(help="Days until the key stops working (default never).")
    ] = None,
    requests_per_minute: Annotated[
        int | None, typer.Option(help="Requests per minute allowed (default unlimited).")
    ] = None,
    tokens_per_day: Annotated[
        int | None, typer.Option(help="Prompt + completion tokens per UTC day (default unlimited).")
    ] = None,
    secret_block: SecretBlock = None,
) -> None:
    """Create a key and print it once: store it now, it cannot be shown again."""
    from llmops.governance import audit as trail
    from llmops.governance.keys import create_key, key_store

    if role not in ("inference", "feedback", "admin"):
        raise typer.BadParameter("role must be inference, feedback or admin", param_hint="--role")
    with one_line_errors():
        record, key = create_key(
            key_store(secret_block), name, role, expires, requests_per_minute, tokens_per_day
        )
    trail.record("key.created", f"key {name!r} ({record.role}) created")
    typer.echo(key)
    typer.echo(f"key {name!r} ({role}) created; this is the only time it is shown", err=True)


@keys.command("list")
def list_keys(secret_block: SecretBlock = None) -> None:
    """List keys: name, role, state, limits (never the keys)."""
    from llmops.governance.keys import key_store

    now = datetime.now(UTC)
    rows = key_store(secret_block).load().values()
    if not rows:
        typer.echo("no keys (create one with `llmops keys create --name NAME --role ROLE`)")
    for k in rows:
        state = k.refusal(now) or "active"
        limits = f"rpm={k.requests_per_minute or '-'} tokens/day={k.tokens_per_day or '-'}"
        typer.echo(f"{k.name:<20} {k.role:<9} {k.hint}…  {state:<30} {limits}")


@keys.command("revoke")
def revoke(
    name: Annotated[str, typer.Argument(help="The key's name.")],
    secret_block: SecretBlock = None,
) -> None:
    """Revoke a key; running servers refuse it within their keys_refresh_seconds."""
    from llmops.governance import audit as trail
    from llmops.governance.keys import key_store, revoke_key

    with one_line_errors():
        record = revoke_key(key_store(secret_block), name)
    trail.record("key.revoked", f"key {name!r} ({record.role}) revoked")
    typer.echo(f"key {name!r} revoked")


@audit.callback()
def history(
    ctx: typer.Context,
    model: Annotated[str | None, typer.Option(help="Only entries about this model.")] = None,
) -> None:
    """Print the audit trail, oldest first (`llmops audit verify` checks its hash chain)."""
    if ctx.invoked_subcommand is not None:
        return
    from llmops.governance.audit import AuditLog

    entries = AuditLog().entries(model)
    if not entries:
        typer.echo("no audit entries" + (f" for {model}" if model else ""))
    for e in entries:
        about = f" {e.model} v{e.version}" if e.version else (f" {e.model}" if e.model else "")
        typer.echo(f"#{e.seq} {e.time} {e.action}{about} by {e.actor}: {e.reason}")


@audit.command("verify")
def verify() -> None:
    """Check the hash chain; exit 1 naming the first entry changed, dropped or reordered."""
    from llmops.governance.audit import AuditLog

    log = AuditLog()
    report = log.verify()
    if not report.intact:
        typer.echo(
            f"audit trail BROKEN at line {report.broken_at} of {log.path}: {report.problem} "
            f"({report.entries} entries before it hold)",
            err=True,
        )
        raise typer.Exit(1)
    typer.echo(f"audit trail intact: {report.entries} entries ({log.path})")
