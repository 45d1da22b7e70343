from flink_alerts.alerting.matchers import Subject
from flink_alerts.alerting.routing import group_key, matching_routes
from flink_alerts.events import Alert
from tests.alerting_data import event, tree

RECEIVERS = ("ops", "dev", "db")


def paths(routes, ev=None, **subject):
    found = matching_routes(tree(routes, RECEIVERS), Subject(ev or event(), **subject))
    return [route.path for route in found]


def test_no_routes_or_no_match_goes_to_the_root_with_every_receiver():
    assert paths([]) == ["root"]
    (root,) = matching_routes(tree([{"match": {"namespace": "x"}}], RECEIVERS), Subject(event()))
    assert root.path == "root" and root.receivers == RECEIVERS


def test_first_match_wins():
    routes = [
        {"match": {"namespace": "ns"}, "receivers": ["ops"]},
        {"match": {"namespace": "ns"}, "receivers": ["dev"]},
    ]
    assert paths(routes) == ["routes[0]"]


def test_continue_lets_later_routes_match_too():
    routes = [
        {"match": {"namespace": "ns"}, "receivers": ["ops"], "continue": True},
        {"match": {"namespace": "other"}, "receivers": ["db"]},
        {"receivers": ["dev"]},
        {"receivers": ["db"]},
    ]
    assert paths(routes) == ["routes[0]", "routes[2]"]


def test_a_route_without_match_catches_all():
    routes = [{"match": {"namespace": "x"}, "receivers": ["ops"]}, {"receivers": ["dev"]}]
    assert paths(routes) == ["routes[1]"]


def test_nesting_deepest_match_and_parent_when_no_child_matches():
    routes = [
        {
            "match": {"namespace": "ns"},
            "receivers": ["ops"],
            "routes": [
                {"match": {"severity": "critical"}, "receivers": ["db"]},
                {"match": {"deployment": "etl-*"}, "receivers": ["dev"]},
            ],
        }
    ]
    assert paths(routes, severity="critical") == ["routes[0].routes[0]"]
    assert paths(routes, severity="warning", deployment_name="etl-x") == ["routes[0].routes[1]"]
    assert paths(routes, severity="warning") == ["routes[0]"]
    assert paths(routes, event(namespace="other")) == ["root"]


def test_children_inherit_what_they_do_not_set():
    root = tree(
        [
            {
                "receivers": ["ops"],
                "group_by": ["namespace"],
                "repeat_interval": "10m",
                "group_wait": "30s",
                "send_resolved": False,
                "routes": [{"match": {"severity": "info"}, "repeat_interval": "1d"}],
            }
        ],
        RECEIVERS,
    )
    parent = root.children[0]
    child = parent.children[0]
    assert (child.receivers, child.group_by, child.group_wait) == (("ops",), ("namespace",), 30)
    assert child.send_resolved is False and child.repeat_interval == 86400
    assert parent.repeat_interval == 600
    assert (root.repeat_interval, root.group_by, root.send_resolved) == (
        3600,
        ("deployment",),
        True,
    )


def test_group_key_by_deployment_or_fleet_wide():
    by_deployment, by_namespace = tree(
        [
            {"receivers": ["ops"], "continue": True},
            {"group_by": ["namespace"], "receivers": ["dev"]},
        ]
    ).children
    one, two = Alert(event(deployment_id="a")), Alert(event(deployment_id="b"))
    other_workspace = Alert(event(deployment_id="b", workspace="w2"))
    assert group_key(by_deployment, one) != group_key(by_deployment, two)
    assert group_key(by_namespace, one) == group_key(by_namespace, two)
    assert group_key(by_namespace, one) == group_key(by_namespace, other_workspace)
    assert group_key(by_namespace, one) != group_key(by_deployment, one)
