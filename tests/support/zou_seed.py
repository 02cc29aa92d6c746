"""Code that runs inside Zou's own virtualenv (.venv-zou), not in ours.

As a script it seeds a freshly initialised Zou database through Zou's services: the
persons are created there rather than through the API because the API validates e-mail
domains with DNS, which test machines may not have. It reads the cast as JSON on stdin
and writes the ids and tokens it created as JSON to the file named by its argument.

It also holds the Flask-Caching factory that gives each test stack its own key prefix in
Zou's memoize cache (Redis DB 1): Zou's prefix is fixed, so two stacks sharing one Redis
would otherwise read each other's cached persons and statuses.
"""

from __future__ import annotations

import json
import os
import sys
from typing import Any


def isolated_redis_cache(app: Any, config: dict[str, Any], args: list[Any], kwargs: dict[str, Any]):
    """Zou's Redis memoize cache, keys prefixed with ``ZOU_TEST_CACHE_PREFIX``."""
    from flask_caching.backends.rediscache import RedisCache

    store = app.config["KEY_VALUE_STORE"]
    return RedisCache(
        *args,
        host=store["host"],
        port=int(store["port"]),
        password=store["password"],
        db=app.config["MEMOIZE_DB_INDEX"],
        key_prefix=os.environ["ZOU_TEST_CACHE_PREFIX"],
        **kwargs,
    )


def _create_person(spec: dict[str, Any]) -> dict[str, Any]:
    from zou.app.services import persons_service
    from zou.app.utils import auth

    person = persons_service.create_person(
        spec["email"],
        auth.encrypt_password(spec["password"]) if spec.get("password") else None,
        spec["first_name"],
        "Test",
        role=spec["role"],
        active=spec.get("active", True),
        is_bot=spec.get("is_bot", False),
    )
    return {"id": person["id"], "access_token": person.get("access_token")}


def _create_project(name: str) -> str:
    from zou.app.models.project import Project
    from zou.app.services import projects_service

    status_id = projects_service.get_open_status()["id"]
    return str(Project.create(name=name, project_status_id=status_id).id)


def _create_playlist(project_id: str, name: str, for_client: bool) -> str:
    from zou.app.models.playlist import Playlist

    return str(Playlist.create(name=name, project_id=project_id, for_client=for_client).id)


def _create_preview_account(project_id: str) -> dict[str, Any]:
    """Zou's per-production preview account, with its access window opened."""
    from zou.app.services import preview_accounts_service

    account, password = preview_accounts_service.create_or_reset_preview_account(project_id)
    preview_accounts_service.set_preview_account_open(project_id, True)
    return {"id": account["id"], "email": account["email"], "password": password}


def seed(cast: dict[str, Any]) -> dict[str, Any]:
    from zou.app.services import projects_service

    project_id = _create_project(cast["project_name"])
    persons = {}
    for name, spec in cast["persons"].items():
        persons[name] = _create_person(spec)
        if spec.get("in_team"):
            projects_service.add_team_member(project_id, persons[name]["id"])
    return {
        "project_id": project_id,
        "playlist_id": _create_playlist(project_id, "Internal review", for_client=False),
        "client_playlist_id": _create_playlist(project_id, "Client review", for_client=True),
        "persons": persons,
        "preview": _create_preview_account(project_id),
    }


def main() -> None:
    from zou.app import create_app

    cast = json.load(sys.stdin)
    with create_app(with_plugins=False).app_context():
        result = seed(cast)
    with open(sys.argv[1], "w", encoding="utf-8") as out:
        json.dump(result, out)


if __name__ == "__main__":
    main()
