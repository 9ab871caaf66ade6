"""The auth store's rules and errors, as etcd 3.4 has them, applied through
the state machine (so every check below is what every replica decides)."""

from __future__ import annotations

import pytest
from auth_helpers import Driver, prefix_perm, user_add, with_root_and_app

from chainfire_core import errors
from chainfire_core.auth import (
    ANONYMOUS,
    AuthDisableRequest,
    AuthEnableRequest,
    AuthenticateCommand,
    AuthInfo,
    AuthStatusRequest,
    AuthStatusResponse,
    Permission,
    PermissionType,
    RoleAddRequest,
    RoleDeleteRequest,
    RoleGetRequest,
    RoleGetResponse,
    RoleGrantPermissionRequest,
    RoleListRequest,
    RoleListResponse,
    RoleRevokePermissionRequest,
    UserAddCommand,
    UserAddRequest,
    UserChangePasswordCommand,
    UserDeleteRequest,
    UserGetRequest,
    UserGetResponse,
    UserGrantRoleRequest,
    UserListRequest,
    UserListResponse,
    UserRevokeRoleRequest,
    hash_password,
    verify_password,
)
from chainfire_core.errors import (
    AuthFailed,
    AuthNotEnabled,
    AuthOldRevision,
    InvalidAuthMgmt,
    PermissionDenied,
    PermissionNotGranted,
    RoleAlreadyExist,
    RoleEmpty,
    RoleNotFound,
    RoleNotGranted,
    RootRoleNotExist,
    RootUserNotExist,
    UserAlreadyExist,
    UserEmpty,
    UserNotFound,
)
from chainfire_core.mvcc.messages import PutRequest

# -- the errors are etcd's, word for word -------------------------------------------------

ETCD_ERRORS = [
    (errors.RootUserNotExist, "FAILED_PRECONDITION", "etcdserver: root user does not exist"),
    (errors.RootRoleNotExist, "FAILED_PRECONDITION",
     "etcdserver: root user does not have root role"),
    (errors.UserAlreadyExist, "FAILED_PRECONDITION", "etcdserver: user name already exists"),
    (errors.UserEmpty, "INVALID_ARGUMENT", "etcdserver: user name is empty"),
    (errors.UserNotFound, "FAILED_PRECONDITION", "etcdserver: user name not found"),
    (errors.RoleAlreadyExist, "FAILED_PRECONDITION", "etcdserver: role name already exists"),
    (errors.RoleNotFound, "FAILED_PRECONDITION", "etcdserver: role name not found"),
    (errors.RoleEmpty, "INVALID_ARGUMENT", "etcdserver: role name is empty"),
    (errors.AuthFailed, "INVALID_ARGUMENT",
     "etcdserver: authentication failed, invalid user ID or password"),
    (errors.PermissionDenied, "PERMISSION_DENIED", "etcdserver: permission denied"),
    (errors.RoleNotGranted, "FAILED_PRECONDITION", "etcdserver: role is not granted to the user"),
    (errors.PermissionNotGranted, "FAILED_PRECONDITION",
     "etcdserver: permission is not granted to the role"),
    (errors.AuthNotEnabled, "FAILED_PRECONDITION", "etcdserver: authentication is not enabled"),
    (errors.InvalidAuthToken, "UNAUTHENTICATED", "etcdserver: invalid auth token"),
    (errors.InvalidAuthMgmt, "INVALID_ARGUMENT", "etcdserver: invalid auth management"),
    (errors.AuthOldRevision, "INVALID_ARGUMENT", "etcdserver: revision of auth store is old"),
    (errors.NoSpace, "RESOURCE_EXHAUSTED", "etcdserver: mvcc: database space exceeded"),
    (errors.ClusterCorrupt, "DATA_LOSS", "etcdserver: corrupt cluster"),
]


@pytest.mark.parametrize(("error", "code", "message"), ETCD_ERRORS,
                         ids=[e.__name__ for e, _, _ in ETCD_ERRORS])
def test_errors_carry_etcds_grpc_code_and_message(error: type[errors.ChainfireError], code: str,
                                                  message: str) -> None:
    raised = error()
    assert isinstance(raised, errors.RequestError)
    assert (raised.grpc_code, str(raised)) == (code, message)


# -- enabling auth ---------------------------------------------------------------------


def test_enable_needs_a_root_user_holding_the_root_role() -> None:
    driver = Driver()
    with pytest.raises(RootUserNotExist):
        driver(AuthEnableRequest())
    driver(user_add("root"))
    with pytest.raises(RootRoleNotExist):
        driver(AuthEnableRequest())
    assert not driver.sm.auth.enabled
    # The root role is built in: it need not be added before it is granted.
    driver(UserGrantRoleRequest(user="root", role="root"))
    assert "root" not in driver.sm.auth.role_list()
    driver(AuthEnableRequest())
    assert driver.sm.auth.enabled


def test_enable_keeps_the_revision_and_disable_bumps_it() -> None:
    driver = Driver()
    with_root_and_app(driver, enable=False)
    before = driver.sm.auth.revision
    driver(AuthEnableRequest())
    driver(AuthEnableRequest())  # already on: ignored
    assert driver.sm.auth.revision == before
    driver(AuthDisableRequest())
    driver(AuthDisableRequest())  # already off: ignored
    assert driver.sm.auth.revision == before + 1 and not driver.sm.auth.enabled


def test_every_change_bumps_the_revision_once() -> None:
    driver = Driver()
    assert driver.sm.auth.revision == 1  # 0 means "no credentials"
    changes = [
        user_add("u"), RoleAddRequest(name="r"),
        RoleGrantPermissionRequest(name="r", perm=prefix_perm(b"/r/")),
        UserGrantRoleRequest(user="u", role="r"),
        UserChangePasswordCommand(name="u", password_hash=hash_password(
            "new", salt=b"another-salt-123", iterations=1_000)),
        RoleRevokePermissionRequest(role="r", key=b"/r/", range_end=b"/r0"),
        UserRevokeRoleRequest(name="u", role="r"), RoleDeleteRequest(role="r"),
        UserDeleteRequest(name="u"),
    ]
    for number, command in enumerate(changes, start=2):
        driver(command)
        assert driver.sm.auth.revision == number, command


def test_granting_a_role_twice_is_ignored() -> None:
    driver = Driver()
    with_root_and_app(driver, enable=False)
    before = driver.sm.auth.revision
    driver(UserGrantRoleRequest(user="alice", role="app"))
    assert driver.sm.auth.revision == before
    assert driver.sm.auth.user_get("alice") == ("app",)


# -- users and roles -------------------------------------------------------------------------


def test_names_may_not_be_empty() -> None:
    with pytest.raises(UserEmpty):
        UserAddRequest(name="", password="x")
    with pytest.raises(UserEmpty):
        UserAddCommand(name="", password_hash=None, no_password=True)
    with pytest.raises(RoleEmpty):
        RoleAddRequest(name="")


def test_adding_twice_and_missing_users_and_roles() -> None:
    driver = Driver()
    with_root_and_app(driver, enable=False)
    with pytest.raises(UserAlreadyExist):
        driver(user_add("alice"))
    with pytest.raises(RoleAlreadyExist):
        driver(RoleAddRequest(name="app"))
    for missing_user in (UserDeleteRequest(name="bob"),
                         UserGrantRoleRequest(user="bob", role="app"),
                         UserRevokeRoleRequest(name="bob", role="app"),
                         UserChangePasswordCommand(name="bob", password_hash=hash_password(
                             "x", salt=b"salt-salt-salt-1", iterations=1_000))):
        with pytest.raises(UserNotFound):
            driver(missing_user)
    for missing_role in (RoleDeleteRequest(role="ops"),
                         UserGrantRoleRequest(user="alice", role="ops"),
                         RoleGrantPermissionRequest(name="ops", perm=prefix_perm(b"/x/")),
                         RoleRevokePermissionRequest(role="ops", key=b"/x/")):
        with pytest.raises(RoleNotFound):
            driver(missing_role)
    with pytest.raises(UserNotFound):
        driver.sm.serve_read(UserGetRequest(name="bob"))
    with pytest.raises(RoleNotFound):
        driver.sm.serve_read(RoleGetRequest(role="ops"))


def test_revoking_what_was_not_granted() -> None:
    driver = Driver()
    with_root_and_app(driver, enable=False)
    with pytest.raises(RoleNotGranted):
        driver(UserRevokeRoleRequest(name="root", role="app"))
    with pytest.raises(PermissionNotGranted):
        driver(RoleRevokePermissionRequest(role="app", key=b"/app/"))  # range_end differs


def test_reads_list_users_roles_and_permissions_in_order() -> None:
    driver = Driver()
    with_root_and_app(driver, enable=False)
    driver(RoleAddRequest(name="ops"))
    driver(UserGrantRoleRequest(user="alice", role="ops"))
    read = Permission(perm_type=PermissionType.READ, key=b"/b")
    driver(RoleGrantPermissionRequest(name="ops", perm=read))
    driver(RoleGrantPermissionRequest(name="ops", perm=prefix_perm(b"/a/")))
    # Granting the same key range again replaces its type.
    write = Permission(perm_type=PermissionType.WRITE, key=b"/b")
    driver(RoleGrantPermissionRequest(name="ops", perm=write))
    users = driver.sm.serve_read(UserListRequest())
    roles = driver.sm.serve_read(RoleListRequest())
    alice = driver.sm.serve_read(UserGetRequest(name="alice"))
    ops = driver.sm.serve_read(RoleGetRequest(role="ops"))
    status = driver.sm.serve_read(AuthStatusRequest())
    assert isinstance(users, UserListResponse) and users.users == ("alice", "root")
    assert isinstance(roles, RoleListResponse) and roles.roles == ("app", "ops")
    assert isinstance(alice, UserGetResponse) and alice.roles == ("app", "ops")
    assert isinstance(ops, RoleGetResponse) and ops.perm == (prefix_perm(b"/a/"), write)
    assert isinstance(status, AuthStatusResponse)
    assert (status.enabled, status.auth_revision) == (False, driver.sm.auth.revision)


def test_deleting_a_role_takes_it_from_every_user() -> None:
    driver = Driver()
    with_root_and_app(driver, enable=False)
    driver(user_add("bob"))
    driver(UserGrantRoleRequest(user="bob", role="app"))
    driver(RoleDeleteRequest(role="app"))
    assert driver.sm.auth.user_get("alice") == () and driver.sm.auth.user_get("bob") == ()
    # A new role of the same name is not granted to anyone by the old grant.
    driver(RoleAddRequest(name="app"))
    assert not driver.sm.auth.has_role("alice", "app")


def test_root_cannot_be_removed_while_auth_is_enabled() -> None:
    driver = Driver()
    with_root_and_app(driver)
    for command in (UserDeleteRequest(name="root"), RoleDeleteRequest(role="root"),
                    UserRevokeRoleRequest(name="root", role="root")):
        with pytest.raises(InvalidAuthMgmt):
            driver.as_user(driver.login("root", "rootpw"), command)
    driver.as_user(driver.login("root", "rootpw"), AuthDisableRequest())
    driver(UserRevokeRoleRequest(name="root", role="root"))
    driver(UserDeleteRequest(name="root"))
    assert "root" not in driver.sm.auth.user_list()


def test_a_changed_password_replaces_the_old_one() -> None:
    driver = Driver()
    with_root_and_app(driver)
    driver.as_user(driver.login("root", "rootpw"), UserChangePasswordCommand(
        name="alice", password_hash=hash_password("fresh", salt=b"fresh-salt-12345",
                                                  iterations=1_000)))
    with pytest.raises(AuthFailed):
        driver.sm.auth.check_password("alice", "alicepw")
    driver.sm.auth.check_password("alice", "fresh")


# -- authentication ---------------------------------------------------------------------------


def test_authentication_needs_auth_enabled_and_the_right_password() -> None:
    driver = Driver()
    with_root_and_app(driver, enable=False)
    with pytest.raises(AuthNotEnabled):
        driver.sm.auth.check_password("alice", "alicepw")
    with pytest.raises(AuthNotEnabled):
        driver(AuthenticateCommand(name="alice", token_prefix="abc", checked_revision=1))
    driver(AuthEnableRequest())
    for name, password in (("alice", "wrong"), ("mallory", "alicepw"), ("", "")):
        with pytest.raises(AuthFailed):
            driver.sm.auth.check_password(name, password)
    with pytest.raises(AuthFailed):  # a user deleted since the check
        driver(AuthenticateCommand(name="mallory", token_prefix="abc",
                                   checked_revision=driver.sm.auth.revision))
    assert driver.sm.auth.check_password("alice", "alicepw") == driver.sm.auth.revision


def test_a_user_without_password_cannot_authenticate() -> None:
    driver = Driver()
    with_root_and_app(driver)
    root = driver.login("root", "rootpw")
    driver.as_user(root, UserAddCommand(name="cn-user", password_hash=None, no_password=True))
    with pytest.raises(AuthFailed):
        driver.sm.auth.check_password("cn-user", "")
    with pytest.raises(AuthFailed):
        driver(AuthenticateCommand(name="cn-user", token_prefix="abc",
                                   checked_revision=driver.sm.auth.revision))


def test_authenticate_refuses_a_password_checked_before_an_auth_change() -> None:
    driver = Driver()
    with_root_and_app(driver)
    checked = driver.sm.auth.check_password("alice", "alicepw")
    driver(RoleAddRequest(name="other"))  # any change in between
    with pytest.raises(AuthOldRevision):
        driver(AuthenticateCommand(name="alice", token_prefix="abc", checked_revision=checked))
    assert len(driver.sm.tokens) == 0


def test_password_hashes_are_salted_and_verified() -> None:
    one = hash_password("pw", salt=b"salt-one-1234567", iterations=1_000)
    two = hash_password("pw", salt=b"salt-two-1234567", iterations=1_000)
    assert one.digest != two.digest
    assert verify_password("pw", one) and not verify_password("pW", one)


# -- who may do what -------------------------------------------------------------------------


def test_admin_commands_need_the_root_role() -> None:
    driver = Driver()
    with_root_and_app(driver)
    alice = driver.login("alice", "alicepw")
    with pytest.raises(PermissionDenied):
        driver.as_user(alice, RoleAddRequest(name="mine"))
    with pytest.raises(UserEmpty):
        driver.as_user(ANONYMOUS, RoleAddRequest(name="mine"))
    with pytest.raises(UserNotFound):
        driver.as_user(AuthInfo(user="ghost", revision=driver.sm.auth.revision),
                       RoleAddRequest(name="mine"))
    driver.as_user(driver.login("root", "rootpw"), RoleAddRequest(name="mine"))
    assert "mine" in driver.sm.auth.role_list()


def test_a_user_may_read_itself_and_its_roles_only() -> None:
    driver = Driver()
    with_root_and_app(driver)
    alice = driver.login("alice", "alicepw")
    assert isinstance(driver.sm.serve_read(UserGetRequest(name="alice"), alice), UserGetResponse)
    assert isinstance(driver.sm.serve_read(RoleGetRequest(role="app"), alice), RoleGetResponse)
    for request in (UserGetRequest(name="root"), RoleGetRequest(role="root"), UserListRequest(),
                    RoleListRequest(), AuthStatusRequest()):
        with pytest.raises(PermissionDenied):
            driver.sm.serve_read(request, alice)
    root = driver.login("root", "rootpw")
    assert isinstance(driver.sm.serve_read(UserListRequest(), root), UserListResponse)


def test_key_value_commands_are_checked_against_the_users_ranges() -> None:
    driver = Driver()
    with_root_and_app(driver)
    alice = driver.login("alice", "alicepw")
    start = driver.sm.revision
    driver.as_user(alice, PutRequest(key=b"/app/a", value=b"1"))
    with pytest.raises(PermissionDenied):
        driver.as_user(alice, PutRequest(key=b"/apq", value=b"1"))
    with pytest.raises(UserEmpty):
        driver.as_user(ANONYMOUS, PutRequest(key=b"/app/a", value=b"1"))
    root = driver.login("root", "rootpw")
    driver.as_user(root, PutRequest(key=b"/anything", value=b"1"))  # root may do anything
    assert driver.sm.revision == start + 2


def test_everything_passes_while_auth_is_disabled() -> None:
    driver = Driver()
    with_root_and_app(driver, enable=False)
    nobody = ANONYMOUS
    driver.as_user(nobody, PutRequest(key=b"/elsewhere", value=b"1"))
    driver.as_user(nobody, RoleAddRequest(name="free"))
    assert isinstance(driver.sm.serve_read(UserListRequest(), nobody), UserListResponse)
