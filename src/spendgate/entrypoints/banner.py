"""What `serve` prints on start: where it listens, the admin token (first start only), the demo
key and a copy-paste call with the openai SDK."""

from __future__ import annotations

from rich.console import Console

from spendgate.bootstrap import Container
from spendgate.domain.money import NANOS_PER_USD

DEMO_ORG = "Demo"
DEMO_PROJECT = "demo"


DEMO_ORG_SOFT_USD, DEMO_ORG_HARD_USD, DEMO_KEY_DAILY_USD = 8, 10, 1


def seed_demo(container: Container) -> str:
    """Create the demo org (with limits) and project if missing; return a new demo key's secret, the key
    limited per day too."""
    accounts = container.accounts
    orgs = accounts.list_orgs()
    demo_org = next((o for o in orgs if o.name == DEMO_ORG), None)
    if demo_org is None:
        demo_org = accounts.create_org(DEMO_ORG, "UTC")
        container.limits.set(
            f"org:{demo_org.id}",
            "month",
            soft_nanos=DEMO_ORG_SOFT_USD * NANOS_PER_USD,
            hard_nanos=DEMO_ORG_HARD_USD * NANOS_PER_USD,
        )
    projects = accounts.list_projects(demo_org.id)
    project = next((p for p in projects if p.name == DEMO_PROJECT), None) or accounts.create_project(
        demo_org.id, DEMO_PROJECT
    )
    key, secret = accounts.create_key(project.id, name="demo")
    container.limits.set(f"key:{key.id}", "day", hard_nanos=DEMO_KEY_DAILY_USD * NANOS_PER_USD)
    return secret


def print_banner(console: Console, container: Container) -> None:
    settings = container.settings
    base = f"http://{settings.host}:{settings.port}"
    upstream = container.router.default
    console.print(f"[bold]spendgate[/bold] listening on {base}")
    console.print(f"  gateway   {base}/v1   (upstream: {upstream.name} {upstream.base_url})")
    console.print(f"  admin API {base}/admin/v1   (OpenAPI: {base}/admin/v1/openapi.json)")
    console.print(f"  health    {base}/healthz   metrics {base}/metrics")
    console.print(f"  database  {settings.db}")
    if container.generated_admin_token:
        console.print(
            f"  admin token (printed once; stored hashed): [bold]{container.generated_admin_token}[/bold]",
            soft_wrap=True,
        )
        console.print(f"  export SPENDGATE_ADMIN_TOKEN={container.generated_admin_token}")
    elif settings.admin_token is None:
        console.print("  admin token: printed on this database's first start; or set SPENDGATE_ADMIN_TOKEN")
    if container.manual_clock is not None:
        console.print("  test clock on: `spendgate clock set|advance` moves time")
    if not settings.demo:
        return
    secret = seed_demo(container)
    console.print("\n[bold]Demo key[/bold] (org Demo, project demo): " + secret)
    console.print(
        f"Limits: the Demo org alerts at ${DEMO_ORG_SOFT_USD} and stops at ${DEMO_ORG_HARD_USD} a month; "
        f"this key stops at ${DEMO_KEY_DAILY_USD} a day (`spendgate limits list`)."
    )
    console.print("Try it with the openai SDK (pip install openai):\n")
    console.print(
        "python - <<'PY'\n"
        "from openai import OpenAI\n"
        f'client = OpenAI(base_url="{base}/v1", api_key="{secret}")\n'
        'reply = client.chat.completions.create(model="gpt-4o-mini",\n'
        '    messages=[{"role": "user", "content": "Say hello"}])\n'
        "print(reply.choices[0].message.content, reply.usage)\n"
        "PY\n",
        soft_wrap=True,
        highlight=False,
        markup=False,
    )
    console.print(
        "Then see what it cost:  spendgate usage --by model   (with SPENDGATE_ADMIN_TOKEN set)",
        highlight=False,
    )
