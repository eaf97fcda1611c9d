"""The container files agree with the code: compose's commands parse, the image ships what it serves."""

from __future__ import annotations

from pathlib import Path

import yaml

from server.cli import build_parser

ROOT = Path(__file__).resolve().parent.parent


def test_compose_runs_postgres_one_web_and_two_workers_with_health_checks() -> None:
    compose = yaml.safe_load((ROOT / "compose.yaml").read_text())
    services = compose["services"]
    assert set(services) == {"db", "web", "worker"}
    for name in ("web", "worker"):
        args = build_parser().parse_args(services[name]["command"])  # exits (fails) on a command kith lacks
        assert args.command == {"web": "serve", "worker": "worker"}[name]
        assert services[name]["environment"]["KITH_DATABASE_URL"].startswith("postgresql://")
    assert build_parser().parse_args(services["web"]["command"]).no_worker
    assert services["worker"]["deploy"]["replicas"] == 2
    assert "/readyz" in " ".join(services["web"]["healthcheck"]["test"])
    assert "pg_isready" in " ".join(services["db"]["healthcheck"]["test"])
    assert services["worker"]["depends_on"]["web"]["condition"] == "service_healthy"
    assert "kith-db" in compose["volumes"]


def test_dockerfile_copies_the_static_files_the_package_links_to() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert "COPY static ./static" in dockerfile and "COPY server ./server" in dockerfile
    link = ROOT / "server" / "static"
    assert link.is_symlink() and link.resolve() == (ROOT / "static").resolve()
