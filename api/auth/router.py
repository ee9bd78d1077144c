from __future__ import annotations

from fastapi import APIRouter, status

from api.auth import service
from api.auth.schemas import KeyCreate, KeyCreated, KeyPublic, KeysPublic
from api.deps import Admin, CurrentKey, SessionDep
from api.schemas import ERRORS, NOT_FOUND

router = APIRouter(prefix="/keys", tags=["keys"], responses=ERRORS)


@router.post("", status_code=status.HTTP_201_CREATED, response_model=KeyCreated)
def create_key(body: KeyCreate, session: SessionDep, admin: Admin) -> KeyCreated:
    key, raw = service.create_key(session, body.name, body.role, created_by=admin.id)
    return KeyCreated(**KeyPublic.model_validate(key).model_dump(), key=raw)


@router.get("/me", response_model=KeyPublic)
def whoami(key: CurrentKey) -> KeyPublic:
    """The calling key (its role decides what a client should offer)."""
    return KeyPublic.model_validate(key)


@router.get("", response_model=KeysPublic)
def list_keys(session: SessionDep, _: Admin) -> KeysPublic:
    keys = [KeyPublic.model_validate(k) for k in service.list_keys(session)]
    return KeysPublic(data=keys, count=len(keys))


@router.delete("/{key_id}", response_model=KeyPublic, responses=NOT_FOUND)
def revoke_key(key_id: str, session: SessionDep, admin: Admin) -> KeyPublic:
    return KeyPublic.model_validate(service.revoke_key(session, key_id, actor=admin.id))
