import pytest

from dashboard.accounts.models import Role, User
from dashboard.accounts.quotas import Footprint, quota_problem, usage_of


def person(role=Role.MEMBER, **quota) -> User:
    return User(username="q", role=role, **quota)


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
    problem = quota_problem(person(quota_sandboxes=2), [RUNNING, STOPPED], RUNNING, new=True)
    assert problem.startswith("Your quota allows 2 of sandboxes; you use 2 and this needs 1 more.")


def test_starting_a_sandbox_counts_its_cpu_but_not_another_sandbox() -> None:
    member = person(quota_sandboxes=2, quota_cpu=3)
    assert "vCPUs" in quota_problem(member, [RUNNING], RUNNING, new=False)
    assert quota_problem(member, [STOPPED], RUNNING, new=False) is None


def test_a_stopped_sandbox_needs_no_cpu_or_memory_quota() -> None:
    assert quota_problem(person(quota_cpu=0, quota_memory=0), [], STOPPED, new=True) is None


def test_disk_counts_only_for_new_sandboxes() -> None:
    member = person(quota_disk=15)
    assert "disk" in quota_problem(member, [STOPPED], STOPPED, new=True)
    assert quota_problem(member, [STOPPED], RUNNING, new=False) is None


@pytest.mark.parametrize("role", [Role.ADMIN])
def test_admins_have_no_personal_quota(role) -> None:
    assert quota_problem(person(role, quota_sandboxes=0), [RUNNING], RUNNING, new=True) is None
