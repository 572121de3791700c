import pytest

from dashboard.accounts.models import ConnectionQuota, Role, User
from dashboard.accounts.quotas import Footprint, quota_problem, usage_of


def check(
    owned: list[Footprint], adding: Footprint, *, new: bool, role=Role.MEMBER, **quota
) -> str | None:
    """quota_problem for a person with `quota` on the connection in use."""
    person = User(username="q", role=role)
    return quota_problem(person, ConnectionQuota(user=person, **quota), owned, adding, new=new)


RUNNING = Footprint("started", cpu=2, memory=4, disk=10)
STOPPED = Footprint("stopped", cpu=2, memory=4, disk=10)
GONE = Footprint("destroyed", cpu=8, memory=8, disk=50)


def test_running_sandboxes_count_cpu_and_memory_and_every_sandbox_counts_disk() -> None:
    assert usage_of([RUNNING, STOPPED, GONE]).__dict__ == {
        "sandboxes": 2,
        "cpu": 2,
        "memory": 4,
        "disk": 20,
    }


def test_a_new_sandbox_past_the_count_is_refused_with_the_numbers() -> None:
    problem = check([RUNNING, STOPPED], RUNNING, new=True, quota_sandboxes=2)
    assert problem.startswith("Your quota allows 2 of sandboxes; you use 2 and this needs 1 more.")


def test_starting_a_sandbox_counts_its_cpu_but_not_another_sandbox() -> None:
    member = {"quota_sandboxes": 2, "quota_cpu": 3}
    assert "vCPUs" in check([RUNNING], RUNNING, new=False, **member)
    assert check([STOPPED], RUNNING, new=False, **member) is None


def test_a_stopped_sandbox_needs_no_cpu_or_memory_quota() -> None:
    assert check([], STOPPED, new=True, quota_cpu=0, quota_memory=0) is None


def test_disk_counts_only_for_new_sandboxes() -> None:
    assert "disk" in check([STOPPED], STOPPED, new=True, quota_disk=15)
    assert check([STOPPED], RUNNING, new=False, quota_disk=15) is None


@pytest.mark.parametrize("role", [Role.ADMIN])
def test_admins_have_no_personal_quota(role) -> None:
    assert check([RUNNING], RUNNING, new=True, role=role, quota_sandboxes=0) is None
