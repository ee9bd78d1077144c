"""Dependencies declared once and reused by every router (SessionDep, CurrentKey, roles)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy.orm import Session

from api.auth.service import authenticate
from core.errors import Forbidden, Unauthorized
from core.settings import Settings
from core.storage import ObjectStore
from models import ApiKey


def get_session(request: Request) -> Iterator[Session]:
    """The request boundary owns the transaction: commit after the handler, else roll back."""
    session = request.app.state.session_factory()
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()


def get_app_settings(request: Request) -> Settings:
    return request.app.state.settings


def get_store(request: Request) -> ObjectStore:
    return request.app.state.store


# scope="function": the commit happens before the response is sent, so a client never
# hears "201 Created" for a row that a failed commit then loses, nor races ahead of it.
SessionDep = Annotated[Session, Depends(get_session, scope="function")]
SettingsDep = Annotated[Settings, Depends(get_app_settings)]
StoreDep = Annotated[ObjectStore, Depends(get_store)]


def current_key(request: Request, session: SessionDep) -> ApiKey:
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthorized("missing API key: send 'Authorization: Bearer <key>'")
    key = authenticate(session, token.strip())
    request.state.api_key_id = key.id
    return key


CurrentKey = Annotated[ApiKey, Depends(current_key)]

READ = ("admin", "compliance", "engineer", "viewer")
ENGINEER = ("admin", "engineer")
ADMIN = ("admin",)


def require(*roles: str) -> Callable[[ApiKey], ApiKey]:
    def check(key: CurrentKey) -> ApiKey:
        if key.role not in roles:
            raise Forbidden(f"role '{key.role}' may not do this; needs one of: {', '.join(roles)}")
        return key

    return check


Reader = Annotated[ApiKey, Depends(require(*READ))]
Engineer = Annotated[ApiKey, Depends(require(*ENGINEER))]
Admin = Annotated[ApiKey, Depends(require(*ADMIN))]
Compliance = Annotated[ApiKey, Depends(require("admin", "compliance"))]
