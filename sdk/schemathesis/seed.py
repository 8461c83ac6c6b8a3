"""Seeds a fresh linli with what the fuzzer's requests can reach, and prints the credentials and
ids as shell assignments for run.sh to export (schemathesis.toml reads them from the environment).

Run by sdk/schemathesis/run.sh, which starts linli and wechat-mock and sets:
  LINLI_URL, WECHAT_MOCK_URL  where they listen
  LINLI_BIN, DATABASE_URL     to make the first admin key with `linli keys create`

What it makes, through linli's own API (plain HTTP: the fuzzer needs no generated client):
  - a platform admin key (the `OperatorKey` of the main run);
  - a property company with a community, two rooms and a roster entry, and a merchant of the
    community with its own key (the `MerchantKey`);
  - a resident logged in from a mock `wx.login` code and bound to room 1-1-101 by the roster
    (the `ResidentSession`);
  - for the operations that end their own caller's access (logging out, revoking keys,
    archiving orgs): a second company with its own admin key and a second resident, so fuzzing
    them cannot cut the main run's credentials or fixtures.
"""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
from typing import Any

import requests

LINLI_URL = os.environ["LINLI_URL"]
MOCK_URL = os.environ["WECHAT_MOCK_URL"]
LINLI_BIN = os.environ["LINLI_BIN"]

http = requests.Session()
http.trust_env = False  # loopback only: never through a proxy the environment may name


def call(method: str, path: str, status: int, *, key: str = "", bearer: str = "", body: Any = None) -> Any:
    headers = {}
    if key:
        headers["X-Api-Key"] = key
    if bearer:
        headers["Authorization"] = f"Bearer {bearer}"
    r = http.request(method, f"{LINLI_URL}{path}", json=body, headers=headers, timeout=30)
    if r.status_code != status:
        sys.exit(f"seed: {method} {path} answered {r.status_code}, not {status}: {r.text}")
    return r.json() if r.content else None


def first_admin_key() -> str:
    """`linli keys create --org 1 --role admin` on the same database; the secret is the last line."""
    done = subprocess.run(
        [LINLI_BIN, "keys", "create", "--org", "1", "--role", "admin", "--name", "schemathesis"],
        check=False,
        capture_output=True,
        text=True,
        timeout=60,
        env=os.environ,
    )
    if done.returncode != 0:
        sys.exit(f"seed: linli keys create failed ({done.returncode}): {done.stderr.strip()}")
    secret = done.stdout.strip().splitlines()[-1].strip()
    if not secret.startswith("lk_"):
        sys.exit(f"seed: no key secret on the last line of: {done.stdout!r}")
    return secret


def org(admin: str, parent_id: int, kind: str, name: str) -> int:
    return call("POST", "/admin/v1/orgs", 201, key=admin, body={"parent_id": parent_id, "kind": kind, "name": name})[
        "id"
    ]


def api_key(admin: str, org_id: int, role: str, name: str) -> str:
    made = call("POST", "/admin/v1/api-keys", 201, key=admin, body={"org_id": org_id, "role": role, "name": name})
    return made["secret"]


def resident_session() -> tuple[str, int]:
    """A new WeChat user of the mock logs in to the mini-program: (access token, resident id)."""
    user = http.post(f"{MOCK_URL}/__mock/users", timeout=10)
    user.raise_for_status()
    unionid = user.json()["unionid"]
    code = http.post(f"{MOCK_URL}/__mock/users/{unionid}/login-code", timeout=10)
    code.raise_for_status()
    session = call("POST", "/mp/v1/sessions", 201, body={"code": code.json()["code"]})
    return session["access_token"], session["resident_id"]


def main() -> None:
    admin = first_admin_key()
    company = org(admin, 1, "company", "模糊测试物业")
    community = org(admin, company, "community", "模糊测试花园")
    rooms = {"rows": [{"building": "1", "unit": "1", "number": n} for n in ("101", "102")]}
    call("POST", f"/admin/v1/communities/{community}/rooms/import", 200, key=admin, body=rooms)
    roster = {
        "rows": [{"name": "张三", "phone": "13800138000", "building": "1", "unit": "1", "number": "101", "role": "owner"}]
    }
    call("POST", f"/admin/v1/communities/{community}/roster/import", 200, key=admin, body=roster)
    merchant = org(admin, community, "merchant", "模糊测试便利店")
    merchant_key = api_key(admin, merchant, "operator", "till")

    token, resident = resident_session()
    binding = call(
        "POST",
        "/mp/v1/me/bindings",
        201,
        bearer=token,
        body={
            "community_id": community,
            "building": "1",
            "unit": "1",
            "number": "101",
            "role": "owner",
            "name": "张三",
            "phone": "13800138000",
        },
    )
    if binding["state"] != "verified":
        sys.exit(f"seed: the resident's binding is {binding['state']}, not verified by the roster")

    # The throwaway side: what the self-ending operations may destroy.
    spare_company = org(admin, 1, "company", "可丢弃物业")
    spare_admin = api_key(admin, spare_company, "admin", "spare admin")
    spare_token, _ = resident_session()

    values = {
        "LINLI_FUZZ_ADMIN_KEY": admin,
        "LINLI_FUZZ_MERCHANT_KEY": merchant_key,
        "LINLI_FUZZ_RESIDENT_TOKEN": token,
        "LINLI_FUZZ_SPARE_ADMIN_KEY": spare_admin,
        "LINLI_FUZZ_SPARE_RESIDENT_TOKEN": spare_token,
        "LINLI_FUZZ_COMPANY_ID": company,
        "LINLI_FUZZ_COMMUNITY_ID": community,
        "LINLI_FUZZ_MERCHANT_ID": merchant,
        "LINLI_FUZZ_RESIDENT_ID": resident,
        "LINLI_FUZZ_BINDING_ID": binding["id"],
    }
    for name, value in values.items():
        print(f"{name}={shlex.quote(str(value))}")
    print(
        f"seed: company {company}, community {community}, merchant {merchant}, resident {resident} "
        f"(binding {binding['id']}), spare company {spare_company}",
        file=sys.stderr,
    )


if __name__ == "__main__":
    main()
