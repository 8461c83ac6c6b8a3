"""The SDK proof's journey: a resident logs in to the mini-program API and binds to their home,
through a client generated from openapi/openapi.yaml (openapi-python-client).

Run by sdk/python/run.sh, which starts linli and wechat-mock and sets:
  LINLI_URL, WECHAT_MOCK_URL  where they listen
  LINLI_BIN, DATABASE_URL     to make the first admin key with `linli keys create`

Every call to linli's own API (/admin/v1 and /mp/v1) goes through the generated client. Plain httpx
talks only to the mock's control API (/__mock/), for what WeChat itself would do: make a user and
hand the mini-program a `wx.login` code.
"""

from __future__ import annotations

import os
import subprocess
import sys
import traceback
from collections.abc import Callable
from typing import Any

import httpx
from linli_client import AuthenticatedClient, Client
from linli_client.api.api_keys import create_api_key
from linli_client.api.bindings import approve_binding, list_bindings
from linli_client.api.mp_bindings import list_my_bindings, request_binding
from linli_client.api.mp_me import get_my_profile
from linli_client.api.mp_session import create_session
from linli_client.api.orgs import create_org
from linli_client.api.rooms import import_rooms
from linli_client.api.roster import import_roster
from linli_client.models import (
    ApprovalNote,
    Binding,
    BindingList,
    BindingPage,
    BindingState,
    CreateApiKey,
    CreatedApiKey,
    CreateOrg,
    ErrorBody,
    ImportReport,
    KeyRole,
    Login,
    Org,
    OrgKind,
    Profile,
    RequestBinding,
    ResidentRole,
    RoomImport,
    RoomImportRow,
    RosterImport,
    RosterImportRow,
    Session,
)
from linli_client.types import Response

LINLI_URL = os.environ["LINLI_URL"]
MOCK_URL = os.environ["WECHAT_MOCK_URL"]
LINLI_BIN = os.environ["LINLI_BIN"]
# Loopback only: never through a proxy the environment may name.
HTTPX_ARGS: dict[str, Any] = {"trust_env": False}


class CheckFailed(Exception):
    pass


def expect(resp: Response[Any], status: int, kind: type) -> Any:
    """The parsed body of `resp`, which must have `status` and parse as `kind`."""
    if resp.status_code != status or not isinstance(resp.parsed, kind):
        raise CheckFailed(
            f"expected {status} {kind.__name__}, got {int(resp.status_code)}: {resp.content.decode(errors='replace')}"
        )
    return resp.parsed


def ensure(condition: bool, message: str) -> None:
    if not condition:
        raise CheckFailed(message)


# --- what WeChat does (the mock's control API, plain httpx) ------------------------------------------


def wechat() -> httpx.Client:
    return httpx.Client(base_url=MOCK_URL, timeout=10, **HTTPX_ARGS)


def new_wechat_user() -> dict[str, str]:
    with wechat() as http:
        r = http.post("/__mock/users")
        r.raise_for_status()
        user = r.json()
    for field in ("oa_openid", "mp_openid", "unionid"):
        ensure(bool(user.get(field)), f"the mock's new user has no {field}: {user}")
    return user


def login_code(user: dict[str, str]) -> str:
    with wechat() as http:
        r = http.post(f"/__mock/users/{user['unionid']}/login-code")
        r.raise_for_status()
        return r.json()["code"]


# --- linli, through the generated client -------------------------------------------------------------


def anonymous() -> Client:
    return Client(base_url=LINLI_URL, raise_on_unexpected_status=True, httpx_args=HTTPX_ARGS)


def operator(key: str) -> AuthenticatedClient:
    """An admin-API client: the key goes in `X-Api-Key`, without a prefix."""
    return AuthenticatedClient(
        base_url=LINLI_URL,
        token=key,
        prefix="",
        auth_header_name="X-Api-Key",
        raise_on_unexpected_status=True,
        httpx_args=HTTPX_ARGS,
    )


def resident(session: Session) -> AuthenticatedClient:
    """A mini-program client: `Authorization: Bearer <access_token>`."""
    return AuthenticatedClient(
        base_url=LINLI_URL, token=session.access_token, raise_on_unexpected_status=True, httpx_args=HTTPX_ARGS
    )


def first_admin_key() -> str:
    """`linli keys create --org 1 --role admin` on the same database; the secret is the last line."""
    done = subprocess.run(
        [LINLI_BIN, "keys", "create", "--org", "1", "--role", "admin", "--name", "sdk proof"],
        check=False,
        capture_output=True,
        text=True,
        timeout=60,
        env=os.environ,
    )
    if done.returncode != 0:
        raise CheckFailed(f"linli keys create failed ({done.returncode}): {done.stderr.strip()}")
    secret = done.stdout.strip().splitlines()[-1].strip()
    ensure(secret.startswith("lk_"), f"no key secret on the last line of: {done.stdout!r}")
    return secret


def log_in(user: dict[str, str]) -> Session:
    return expect(create_session.sync_detailed(client=anonymous(), body=Login(code=login_code(user))), 201, Session)


def bind_101(me: AuthenticatedClient, community_id: int, name: str, phone: str, role: ResidentRole) -> Binding:
    body = RequestBinding(
        community_id=community_id, building="1", unit="1", number="101", role=role, name=name, phone=phone
    )
    return expect(request_binding.sync_detailed(client=me, body=body), 201, Binding)


def my_binding(me: AuthenticatedClient, binding_id: int) -> Binding:
    mine = expect(list_my_bindings.sync_detailed(client=me), 200, BindingList)
    found = [b for b in mine.items if b.id == binding_id]
    ensure(len(found) == 1, f"binding {binding_id} is not among mine: {[b.to_dict() for b in mine.items]}")
    return found[0]


# --- the checks ----------------------------------------------------------------------------------------


class Run:
    def __init__(self) -> None:
        self.passed = self.failed = self.skipped = 0

    def group(self, title: str, steps: list[tuple[str, Callable[[], str | None]]]) -> None:
        """Runs `steps` in order; after a failure the rest of the group is skipped."""
        print(f"\n{title}")
        for i, (name, step) in enumerate(steps):
            try:
                detail = step()
            except Exception as err:  # noqa: BLE001 - every failure is reported, not raised
                self.failed += 1
                print(f"  FAIL {name}: {err}")
                if not isinstance(err, CheckFailed):
                    traceback.print_exc()
                for skipped, _ in steps[i + 1 :]:
                    self.skipped += 1
                    print(f"  skip {skipped}")
                return
            self.passed += 1
            print(f"  ok   {name}" + (f": {detail}" if detail else ""))


def main() -> int:
    run = Run()
    state: dict[str, Any] = {}

    # An operator sets up a company, a community, its rooms and its roster.
    def admin_key() -> str:
        state["admin"] = operator(first_admin_key())
        return "made with `linli keys create --org 1 --role admin`"

    def company_and_community() -> str:
        admin = state["admin"]
        company = expect(
            create_org.sync_detailed(client=admin, body=CreateOrg(parent_id=1, kind=OrgKind.COMPANY, name="阳光物业")),
            201,
            Org,
        )
        ensure(company.id == 2, f"the company got id {company.id}, not 2 (LINLI_OA_COMPANY_ID)")
        community = expect(
            create_org.sync_detailed(
                client=admin, body=CreateOrg(parent_id=company.id, kind=OrgKind.COMMUNITY, name="阳光花园")
            ),
            201,
            Org,
        )
        state["community"] = community.id
        return f"company {company.id}, community {community.id}"

    def rooms_and_roster() -> str:
        admin, community = state["admin"], state["community"]
        rooms = RoomImport(rows=[RoomImportRow(building="1", unit="1", number=n) for n in ("101", "102")])
        report = expect(import_rooms.sync_detailed(community, client=admin, body=rooms), 200, ImportReport)
        ensure((report.created, report.rejected) == (2, []), f"rooms import: {report.to_dict()}")
        roster = RosterImport(
            rows=[RosterImportRow(name="张三", phone="13800138000", building="1", unit="1", number="101", role="owner")]
        )
        report = expect(import_roster.sync_detailed(community, client=admin, body=roster), 200, ImportReport)
        ensure((report.created, report.rejected) == (1, []), f"roster import: {report.to_dict()}")
        return "rooms 1-1-101, 1-1-102; 张三 owns 1-1-101"

    run.group(
        "setup (admin API, X-Api-Key)",
        [
            ("first admin key", admin_key),
            ("company and community", company_and_community),
            ("rooms and roster imported as JSON", rooms_and_roster),
        ],
    )
    if run.failed:
        return summary(run)

    # 张三 logs in and binds to 1-1-101: the roster matches, so it is verified at once.
    def zhang_logs_in() -> str:
        user = new_wechat_user()
        code = login_code(user)
        session = expect(create_session.sync_detailed(client=anonymous(), body=Login(code=code)), 201, Session)
        ensure(session.token_type == "Bearer", f"token_type {session.token_type!r}")
        state.update(zhang=resident(session), zhang_code=code, zhang_session=session)
        return f"resident {session.resident_id}"

    def zhang_profile() -> str:
        profile = expect(get_my_profile.sync_detailed(client=state["zhang"]), 200, Profile)
        ensure(
            profile.resident_id == state["zhang_session"].resident_id,
            f"profile of resident {profile.resident_id}, session of {state['zhang_session'].resident_id}",
        )
        kinds = sorted(i.app_kind for i in profile.identities)
        ensure("mp" in kinds, f"no mini-program identity: {kinds}")
        return f"resident {profile.resident_id}, identities {kinds}"

    def zhang_binds() -> str:
        b = bind_101(state["zhang"], state["community"], "张三", "13800138000", ResidentRole.OWNER)
        ensure(
            (b.state, b.verified_by, b.room_label) == (BindingState.VERIFIED, "roster", "1-1-101"),
            f"binding: {b.to_dict()}",
        )
        state["zhang_binding"] = b.id
        return f"binding {b.id} {b.state} by {b.verified_by}"

    def zhang_reads_back() -> str:
        b = my_binding(state["zhang"], state["zhang_binding"])
        ensure(b.state == BindingState.VERIFIED, f"state {b.state}")
        return f"{b.room_label} {b.role} {b.state}"

    def reused_code() -> str:
        resp = create_session.sync_detailed(client=anonymous(), body=Login(code=state["zhang_code"]))
        err = expect(resp, 401, ErrorBody)
        ensure(err.code == "unauthorized", f"code {err.code!r}")
        ensure(bool(err.request_id), "no request_id")
        return f"401 {err.code}: {err.message}"

    run.group(
        "resident 张三: roster match (mini-program API, Bearer)",
        [
            ("log in with a wx.login code", zhang_logs_in),
            ("get_my_profile", zhang_profile),
            ("request_binding 1-1-101 as owner → verified", zhang_binds),
            ("list_my_bindings → verified", zhang_reads_back),
            ("a reused login code → 401 ErrorBody(code=unauthorized)", reused_code),
        ],
    )

    # 李四 is not on the roster: pending until an operator of the community approves it.
    def li_asks() -> str:
        state["li"] = resident(log_in(new_wechat_user()))
        b = bind_101(state["li"], state["community"], "李四", "13900139000", ResidentRole.TENANT)
        ensure(b.state == BindingState.PENDING, f"binding: {b.to_dict()}")
        state["li_binding"] = b.id
        return f"binding {b.id} {b.state}"

    def operator_approves() -> str:
        made = expect(
            create_api_key.sync_detailed(
                client=state["admin"],
                body=CreateApiKey(org_id=state["community"], role=KeyRole.OPERATOR, name="front desk"),
            ),
            201,
            CreatedApiKey,
        )
        desk = operator(made.secret)
        queue = expect(
            list_bindings.sync_detailed(client=desk, community_id=state["community"], state=BindingState.PENDING),
            200,
            BindingPage,
        )
        ensure([b.id for b in queue.items] == [state["li_binding"]], f"queue: {[b.id for b in queue.items]}")
        b = expect(
            approve_binding.sync_detailed(state["li_binding"], client=desk, body=ApprovalNote(reason="租赁合同已核验")),
            200,
            Binding,
        )
        ensure((b.state, b.verified_by) == (BindingState.VERIFIED, "operator"), f"binding: {b.to_dict()}")
        return f"approved by an operator key of community {state['community']}"

    def li_reads_back() -> str:
        b = my_binding(state["li"], state["li_binding"])
        ensure((b.state, b.verified_by) == (BindingState.VERIFIED, "operator"), f"binding: {b.to_dict()}")
        return f"{b.room_label} {b.role} {b.state} by {b.verified_by}"

    run.group(
        "resident 李四: no roster match, reviewed",
        [
            ("request_binding → pending", li_asks),
            ("approve_binding (operator key)", operator_approves),
            ("list_my_bindings → verified", li_reads_back),
        ],
    )
    return summary(run)


def summary(run: Run) -> int:
    skipped = f", {run.skipped} skipped" if run.skipped else ""
    print(f"\nsdk: {run.passed} passed, {run.failed} failed{skipped}")
    return 0 if run.failed == 0 and run.passed > 0 else 1


if __name__ == "__main__":
    sys.exit(main())
