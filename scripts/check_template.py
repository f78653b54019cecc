#!/usr/bin/env python3
"""Checks the operational wiring of template.yaml, what cfn-lint and
`sam validate` cannot know is wanted:

- every AWS::CloudWatch::Alarm notifies someone: its AlarmActions and
  OKActions are present and never empty, whichever branch of every Fn::If is
  taken; they name AlarmTopicArn when it is set (HasAlarmTopic) and else the
  stack's own AlarmTopic, which exists exactly when AlarmTopicArn is empty;
- the TargetGroupArns pattern (the scope of the targets role's writes), applied
  as CloudFormation applies it to a CommaDelimitedList (to each item, whole:
  re.fullmatch), accepts whole target group ARNs, one or two, and the empty
  default, and refuses "*" and every ARN with a wildcard; refused values stay
  refused if the pattern were applied to the whole string instead;
- every function with a Schedule event has a heartbeat alarm: AWS/Lambda
  Invocations of that function, Sum, below 1 in three periods in a row, each
  at least the schedule's period (the HeartbeatPeriodSeconds parameter for a
  schedule given by a parameter), missing data breaching, under the
  condition(s) the schedule runs under;
- every Schedule, CloudWatchEvent and EventBridgeRule event has a RetryPolicy
  within EventBridge's ranges (0..185 attempts, 60..86400 s; a parameter's
  MinValue and MaxValue must lie within them) and a DeadLetterConfig whose Arn
  is the function's own dead-letter queue (its EventInvokeConfig OnFailure
  destination; SAM refuses Arn together with Type);
- the egress, targets and eip functions each have one rule event
  (CloudWatchEvent or EventBridgeRule) on the Spot interruption warning
  (source aws.ec2, detail-type EC2 Spot Instance Interruption Warning, nothing
  else), in the same State as their rule on EC2 state changes (DESIGN.md,
  "Leaving nodes"); the routes function has none;
- every parameter is in exactly one parameter group of the
  AWS::CloudFormation::Interface metadata, and every group names parameters
  of the template only;
- every function's ReservedConcurrentExecutions is the ReservedConcurrency
  parameter (Number, default 1, 0 or 1), or nothing (AWS::NoValue) when it is
  0: Lambda reads 0 as "throttle every invocation";
- each job has an alarm on WritesFailed, egress on TablesLeftAlone and eip on
  ChangesWithheld: namespace MetricsNamespace, dimensions Job plus the job's own
  set, Maximum > 0, missing data not breaching, under the job's condition; and
  every alarm with a Job dimension has exactly Job plus its job's set;
- every use of a per-account parameter (VpcId, ClusterName,
  SourceRouteTableId) in a resource or an output reads its resolved value
  (check_policy.resolved: the SSM parameter's value when one is named, else
  the parameter), directly or as a !Sub variable: no !Ref of the parameter and
  no ${Parameter} in a !Sub elsewhere; conditions test the parameter only in
  Has<Parameter> (which also holds when the SSM parameter is set), and every
  rule that accepts the parameter as set accepts its SSM parameter too.

The queue and topic policies those wires need are checked by check_policy.py.
"""
import json
import re
import sys
from pathlib import Path

from cfnlint.decode import decode  # cfn-lint's YAML loader understands !Sub and friends

from check_policy import PER_ACCOUNT, not_empty, resolved, set_condition, ssm_parameter

ROOT = Path(__file__).resolve().parent.parent

NO_VALUE = {"Ref": "AWS::NoValue"}
ALARM = "AWS::CloudWatch::Alarm"
FUNCTION_TYPES = {"AWS::Serverless::Function", "AWS::Lambda::Function"}
RULE_EVENTS = {"Schedule", "CloudWatchEvent", "EventBridgeRule"}

# The alarm topic: the AlarmTopicArn parameter when set, else the stack's own.
ALARM_TOPIC_PARAMETER, ALARM_TOPIC_CONDITION, ALARM_TOPIC = "AlarmTopicArn", "HasAlarmTopic", "AlarmTopic"
ALARM_TOPIC_ACTIONS = {json.dumps({"Ref": ALARM_TOPIC_PARAMETER}), json.dumps({"Ref": ALARM_TOPIC})}

TARGET_GROUPS_PARAMETER = "TargetGroupArns"
TARGET_GROUP = "arn:aws:elasticloadbalancing:us-east-1:123456789012:targetgroup/{}/{}"
TARGET_GROUPS_ACCEPTED = [
    TARGET_GROUP.format("web", "0123456789abcdef"),
    TARGET_GROUP.format("web", "0123456789abcdef") + "," + TARGET_GROUP.format("k8s-nodeport-30080", "fedcba9876543210"),
    "arn:aws-us-gov:elasticloadbalancing:us-gov-west-1:123456789012:targetgroup/web/0123456789abcdef",
]
TARGET_GROUPS_REFUSED = [
    "*",
    "arn:aws:elasticloadbalancing:us-east-1:123456789012:targetgroup/*",
    TARGET_GROUP.format("web-*", "0123456789abcdef"),
    TARGET_GROUP.format("web", "*"),
    TARGET_GROUP.format("web", "0123456789abcde?"),
    TARGET_GROUP.format("*", "0123456789abcdef"),
    "arn:aws:elasticloadbalancing:*:123456789012:targetgroup/web/0123456789abcdef",
    "arn:aws:elasticloadbalancing:us-east-1:*:targetgroup/web/0123456789abcdef",
    "arn:*:elasticloadbalancing:us-east-1:123456789012:targetgroup/web/0123456789abcdef",
    "arn:aws:elasticloadbalancing:us-east-1:123456789012:loadbalancer/net/web/0123456789abcdef",
    TARGET_GROUP.format("web", "0123456789abcdef") + ",*",
]
# An empty item ("arn,") passes a per-item pattern that allows the empty
# default: a rule must refuse empty items whenever the job is on.
NO_EMPTY_ITEM = {"Fn::Not": [{"Fn::Contains": [{"Ref": TARGET_GROUPS_PARAMETER}, ""]}]}

# The rule patterns of the EC2 events the jobs run on: state changes, and the
# Spot interruption warning, which the jobs that act on leaving nodes run on.
STATE_CHANGE = "EC2 Instance State-change Notification"
SPOT_PATTERN = {"source": ["aws.ec2"], "detail-type": ["EC2 Spot Instance Interruption Warning"]}
SPOT_JOBS = {"egress", "targets", "eip"}
INTERFACE = "AWS::CloudFormation::Interface"

# EventBridge's RetryPolicy ranges.
EVENTBRIDGE_RANGES = {"MaximumRetryAttempts": (0, 185), "MaximumEventAgeInSeconds": (60, 86400)}

SCHEDULE_PARAMETER, HEARTBEAT_PARAMETER = "ScheduleExpression", "HeartbeatPeriodSeconds"
RATE = re.compile(r"rate\((\d+) (minute|minutes|hour|hours|day|days)\)")
UNIT_SECONDS = {"minute": 60, "hour": 3600, "day": 86400}

CONCURRENCY_PARAMETER = "ReservedConcurrency"

# A job is named by its function's handler (bootstrap is the routes job).
JOB_OF_HANDLER = {"bootstrap": "routes", "routes": "routes", "egress": "egress", "targets": "targets", "eip": "eip"}
# Each job's own dimension set, as its EMF records and its existing alarms
# carry it; the records carry it a second time with Job in front.
# The per-account values are the resolved ones (the SSM parameter's value
# when one is named).
VPC_DIMENSION = {"Name": "VpcId", "Value": resolved("VpcId")}
JOB_DIMENSIONS = {
    "routes": [
        {"Name": {"Fn::If": ["HasClusterName", "ClusterName", "SourceRouteTableId"]},
         "Value": {"Fn::If": ["HasClusterName", resolved("ClusterName"), resolved("SourceRouteTableId")]}},
        VPC_DIMENSION,
    ],
    "egress": [VPC_DIMENSION, {"Name": "RouterId", "Value": {"Ref": "EgressRouterId"}}],
    "targets": [VPC_DIMENSION],
    "eip": [VPC_DIMENSION],
}
# The alarms on the metrics every job (or one job) emits with the Job set.
JOB_ALARMS = [(job, "WritesFailed") for job in JOB_DIMENSIONS] + [("egress", "TablesLeftAlone"), ("eip", "ChangesWithheld")]


def branches(value):
    """Every value `value` can resolve to, each Fn::If taken both ways; None
    stands for AWS::NoValue (the property or item is absent)."""
    if value == NO_VALUE:
        return [None]
    if isinstance(value, dict) and set(value) == {"Fn::If"}:
        _, then, otherwise = value["Fn::If"]
        return branches(then) + branches(otherwise)
    if isinstance(value, list):
        results = [[]]
        for item in value:
            results = [r + ([] if b is None else [b]) for r in results for b in branches(item)]
        return results
    return [value]


def canonical(dimensions):
    return sorted(json.dumps(d, sort_keys=True) for d in dimensions or [])


def number(value):
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def check_alarm_actions(template, problems):
    resources = template["Resources"]
    conditions = template.get("Conditions", {})
    alarms = {name: r for name, r in resources.items() if r.get("Type") == ALARM}
    if not alarms:
        problems.append("template.yaml has no alarm")
    for name, alarm in sorted(alarms.items()):
        properties = alarm.get("Properties", {})
        for key in ("AlarmActions", "OKActions"):
            if key not in properties:
                problems.append(f"{name}: no {key}: the alarm would notify nobody")
                continue
            before = len(problems)
            for resolved in branches(properties[key]):
                if not isinstance(resolved, list) or not resolved:
                    problems.append(
                        f"{name}: {key} is empty (or absent) in some branch of its Fn::If: {json.dumps(properties[key])}"
                    )
                    continue
                strays = [a for a in resolved if json.dumps(a) not in ALARM_TOPIC_ACTIONS]
                if strays:
                    problems.append(
                        f"{name}: {key} must notify !Ref {ALARM_TOPIC_PARAMETER} or !Ref {ALARM_TOPIC}, not {json.dumps(strays)}"
                    )
            # The one form whose branches match the topic's existence.
            expected = {"Fn::If": [ALARM_TOPIC_CONDITION, [{"Ref": ALARM_TOPIC_PARAMETER}], [{"Ref": ALARM_TOPIC}]]}
            if len(problems) == before and properties[key] != expected:
                problems.append(
                    f"{name}: {key} must be !If [{ALARM_TOPIC_CONDITION}, [!Ref {ALARM_TOPIC_PARAMETER}], "
                    f"[!Ref {ALARM_TOPIC}]], not {json.dumps(properties[key])}"
                )
    empty = {"Fn::Equals": [{"Ref": ALARM_TOPIC_PARAMETER}, ""]}
    if conditions.get(ALARM_TOPIC_CONDITION) != {"Fn::Not": [empty]}:
        problems.append(f"the {ALARM_TOPIC_CONDITION} condition must be !Not [!Equals [!Ref {ALARM_TOPIC_PARAMETER}, \"\"]]")
    topic = resources.get(ALARM_TOPIC, {})
    if topic.get("Type") != "AWS::SNS::Topic":
        problems.append(f"no {ALARM_TOPIC} (AWS::SNS::Topic) for the alarms when {ALARM_TOPIC_PARAMETER} is empty")
    elif conditions.get(topic.get("Condition")) != empty:
        problems.append(
            f"{ALARM_TOPIC} must exist exactly when {ALARM_TOPIC_PARAMETER} is empty: its condition must be "
            f"!Equals [!Ref {ALARM_TOPIC_PARAMETER}, \"\"], not {topic.get('Condition')!r}"
        )


def check_target_group_pattern(template, problems):
    parameter = template.get("Parameters", {}).get(TARGET_GROUPS_PARAMETER)
    if parameter is None:
        problems.append(f"no {TARGET_GROUPS_PARAMETER} parameter")
        return
    pattern = parameter.get("AllowedPattern")
    if not isinstance(pattern, str):
        problems.append(f"{TARGET_GROUPS_PARAMETER} has no AllowedPattern: \"*\" would become the targets role's scope")
        return
    try:
        compiled = re.compile(pattern)
    except re.error as error:
        problems.append(f"{TARGET_GROUPS_PARAMETER}'s AllowedPattern is not a regular expression: {error}")
        return
    is_list = parameter.get("Type") == "CommaDelimitedList"

    def allowed(value):
        # CloudFormation matches a CommaDelimitedList's pattern against each
        # item, a String's against the whole value.
        items = value.split(",") if is_list else [value]
        return all(compiled.fullmatch(item) for item in items)

    accepted = list(TARGET_GROUPS_ACCEPTED)
    if str(parameter.get("Default", "x")) == "":
        accepted.append("")  # the default: the targets job is off
    for value in accepted:
        if not allowed(value):
            problems.append(f"{TARGET_GROUPS_PARAMETER}'s AllowedPattern refuses {value!r}")
    if "" in accepted and is_list:
        asserts = [
            a.get("Assert") for rule in template.get("Rules", {}).values()
            if rule.get("RuleCondition") == {"Fn::Equals": [{"Ref": "EnableTargets"}, "true"]}
            for a in rule.get("Assertions", [])
        ]
        if NO_EMPTY_ITEM not in asserts:
            problems.append(
                f"no rule refuses an empty item of {TARGET_GROUPS_PARAMETER} with EnableTargets=true "
                f"(the pattern accepts the empty default, so it accepts \"arn,\" too)"
            )
    for value in TARGET_GROUPS_REFUSED:
        if allowed(value):
            problems.append(f"{TARGET_GROUPS_PARAMETER}'s AllowedPattern accepts {value!r}")
        elif compiled.fullmatch(value):
            problems.append(f"{TARGET_GROUPS_PARAMETER}'s AllowedPattern accepts {value!r} as a whole string")


def functions(template):
    return {n: r for n, r in template["Resources"].items() if r.get("Type") in FUNCTION_TYPES}


def schedule_period(expression):
    """Seconds between runs of a literal rate() expression, else None."""
    match = RATE.fullmatch(expression) if isinstance(expression, str) else None
    if not match:
        return None
    return int(match.group(1)) * UNIT_SECONDS[match.group(2).rstrip("s")]


def state_condition(state):
    """The condition of State: !If [C, ENABLED, DISABLED]; None when always on."""
    if state is None or state == "ENABLED":
        return None
    if isinstance(state, dict) and set(state) == {"Fn::If"} and state["Fn::If"][1:] == ["ENABLED", "DISABLED"]:
        return state["Fn::If"][0]
    return False  # disabled, or a form this check does not know


def condition_holds(template, name, wanted):
    """Whether condition `name` is exactly the conjunction of `wanted`."""
    wanted = [c for c in wanted if c]
    if not wanted:
        return name is None
    if len(wanted) == 1:
        return name == wanted[0]
    definition = template.get("Conditions", {}).get(name, {})
    parts = definition.get("Fn::And") if isinstance(definition, dict) else None
    return isinstance(parts, list) and sorted(json.dumps(p) for p in parts) == sorted(
        json.dumps({"Condition": c}) for c in wanted
    )


def check_heartbeats(template, problems):
    resources = template["Resources"]
    parameters = template.get("Parameters", {})
    alarms = {n: r for n, r in resources.items() if r.get("Type") == ALARM}
    for name, function in sorted(functions(template).items()):
        for event_name, event in sorted(function.get("Properties", {}).get("Events", {}).items()):
            if event.get("Type") != "Schedule":
                continue
            schedule = event.get("Properties", {})
            runs_under = [function.get("Condition"), state_condition(schedule.get("State"))]
            if False in runs_under:
                problems.append(f"{name}'s {event_name}: its State must be ENABLED or !If [condition, ENABLED, DISABLED]")
                continue
            expression = schedule.get("Schedule")
            period = schedule_period(expression)
            if period is None and expression != {"Ref": SCHEDULE_PARAMETER}:
                problems.append(f"{name}'s {event_name}: a schedule of rate(N unit) or !Ref {SCHEDULE_PARAMETER} expected")
                continue
            found = []
            for alarm_name, alarm in sorted(alarms.items()):
                p = alarm.get("Properties", {})
                if p.get("Namespace") != "AWS/Lambda" or p.get("MetricName") != "Invocations":
                    continue
                if canonical(p.get("Dimensions")) != canonical([{"Name": "FunctionName", "Value": {"Ref": name}}]):
                    continue
                found.append(alarm_name)
                wrong = []
                if p.get("Statistic") != "Sum":
                    wrong.append("Statistic Sum")
                low = (p.get("ComparisonOperator"), number(p.get("Threshold")))
                if low not in {("LessThanThreshold", 1.0), ("LessThanOrEqualToThreshold", 0.0)}:
                    wrong.append("Invocations < 1 (LessThanThreshold 1)")
                if p.get("TreatMissingData") != "breaching":
                    wrong.append("TreatMissingData breaching (no invocation, no data point)")
                if number(p.get("EvaluationPeriods")) != 3 or number(p.get("DatapointsToAlarm", 3)) != 3:
                    wrong.append("EvaluationPeriods 3 (and DatapointsToAlarm 3 or unset)")
                if period is None:
                    if p.get("Period") != {"Ref": HEARTBEAT_PARAMETER}:
                        wrong.append(f"Period !Ref {HEARTBEAT_PARAMETER} (the schedule is !Ref {SCHEDULE_PARAMETER})")
                    elif HEARTBEAT_PARAMETER not in parameters:
                        wrong.append(f"a {HEARTBEAT_PARAMETER} parameter")
                elif (number(p.get("Period")) or 0) < period:
                    wrong.append(f"Period at least the schedule's {period} s, not {p.get('Period')!r}")
                if not condition_holds(template, alarm.get("Condition"), runs_under):
                    wanted = " and ".join(c for c in runs_under if c) or "no condition"
                    wrong.append(f"the schedule's condition ({wanted}), not {alarm.get('Condition')!r}")
                if wrong:
                    problems.append(f"{alarm_name}: the heartbeat of {name} needs " + "; ".join(wrong))
            if not found:
                problems.append(
                    f"{name} runs on a schedule ({event_name}) but has no heartbeat alarm "
                    "(AWS/Lambda Invocations, FunctionName, Sum < 1 in 3 periods, TreatMissingData breaching)"
                )


def parameter_range(parameters, value):
    if isinstance(value, dict) and set(value) == {"Ref"}:
        parameter = parameters.get(value["Ref"])
        if parameter is None:
            return None
        return number(parameter.get("MinValue")), number(parameter.get("MaxValue"))
    return number(value), number(value)


def check_rule_targets(template, problems):
    parameters = template.get("Parameters", {})
    for name, function in sorted(functions(template).items()):
        properties = function.get("Properties", {})
        on_failure = properties.get("EventInvokeConfig", {}).get("DestinationConfig", {}).get("OnFailure", {})
        queue = on_failure.get("Destination")
        for event_name, event in sorted(properties.get("Events", {}).items()):
            if event.get("Type") not in RULE_EVENTS:
                continue
            where = f"{name}'s {event_name} ({event['Type']})"
            event_properties = event.get("Properties", {})
            retry = event_properties.get("RetryPolicy")
            if not isinstance(retry, dict):
                problems.append(f"{where}: no RetryPolicy (EventBridge would retry for 24 hours, 185 times)")
            else:
                for key, (low, high) in EVENTBRIDGE_RANGES.items():
                    if key not in retry:
                        problems.append(f"{where}: RetryPolicy has no {key}")
                        continue
                    bounds = parameter_range(parameters, retry[key])
                    if bounds is None or None in bounds or bounds[0] < low or bounds[1] > high:
                        problems.append(
                            f"{where}: RetryPolicy {key} must lie within EventBridge's {low}..{high} "
                            f"(a parameter's MinValue and MaxValue too), not {json.dumps(retry[key])}"
                        )
            dead_letter = event_properties.get("DeadLetterConfig")
            if not isinstance(dead_letter, dict):
                problems.append(f"{where}: no DeadLetterConfig (an undeliverable event would vanish)")
            elif "Type" in dead_letter:
                problems.append(f"{where}: DeadLetterConfig must give Arn only (SAM refuses Arn with Type, and Type alone makes a new queue)")
            elif queue is None or dead_letter.get("Arn") != queue:
                problems.append(
                    f"{where}: DeadLetterConfig Arn must be the function's dead-letter queue "
                    f"{json.dumps(queue)}, not {json.dumps(dead_letter.get('Arn'))}"
                )


def check_spot_warnings(template, problems):
    """The jobs that act on leaving nodes run at once on a Spot interruption
    warning (they read the warning as observed state; the rule only wakes
    them), whenever they run on state changes."""
    for name, function in sorted(functions(template).items()):
        properties = function.get("Properties", {})
        job = JOB_OF_HANDLER.get(properties.get("Handler"))
        rules = {n: e.get("Properties", {}) for n, e in properties.get("Events", {}).items()
                 if e.get("Type") in {"CloudWatchEvent", "EventBridgeRule"}}
        spot = sorted(n for n, e in rules.items() if SPOT_PATTERN["detail-type"][0] in json.dumps(e.get("Pattern")))
        state = [e for e in rules.values() if STATE_CHANGE in json.dumps(e.get("Pattern"))]
        if job not in SPOT_JOBS:
            if spot:
                problems.append(f"{name} ({job}) does not act on leaving nodes: no Spot interruption rule, not {spot}")
            continue
        if len(spot) != 1:
            problems.append(f"{name} ({job}) needs exactly one rule event on the Spot interruption warning, not {spot}")
            continue
        event = rules[spot[0]]
        if event.get("Pattern") != SPOT_PATTERN:
            problems.append(
                f"{name}'s {spot[0]}: the pattern must be {json.dumps(SPOT_PATTERN)}, "
                f"not {json.dumps(event.get('Pattern'))}"
            )
        if len(state) != 1:
            problems.append(f"{name} ({job}) needs one rule event on EC2 state changes, not {len(state)}")
        elif event.get("State") != state[0].get("State"):
            problems.append(
                f"{name}'s {spot[0]}: its State must be its state-change rule's {json.dumps(state[0].get('State'))}, "
                f"not {json.dumps(event.get('State'))}"
            )


def check_parameter_groups(template, problems):
    parameters = set(template.get("Parameters", {}))
    groups = template.get("Metadata", {}).get(INTERFACE, {}).get("ParameterGroups", [])
    if not groups:
        problems.append(f"no ParameterGroups in the {INTERFACE} metadata")
        return
    seen = {}
    for group in groups:
        label = group.get("Label", {}).get("default")
        for parameter in group.get("Parameters", []):
            seen.setdefault(parameter, []).append(label)
    for parameter in sorted(parameters - set(seen)):
        problems.append(f"parameter {parameter} is in no parameter group of the {INTERFACE} metadata")
    for parameter, labels in sorted(seen.items()):
        if parameter not in parameters:
            problems.append(f"parameter group(s) {labels} name {parameter}, which is no parameter of the template")
        elif len(labels) > 1:
            problems.append(f"parameter {parameter} is in more than one parameter group: {labels}")


def check_reserved_concurrency(template, problems):
    parameters = template.get("Parameters", {})
    conditions = template.get("Conditions", {})
    parameter = parameters.get(CONCURRENCY_PARAMETER)
    if parameter is None:
        problems.append(f"no {CONCURRENCY_PARAMETER} parameter")
    elif (parameter.get("Type"), number(parameter.get("Default")), number(parameter.get("MinValue")),
          number(parameter.get("MaxValue"))) != ("Number", 1.0, 0.0, 1.0):
        problems.append(f"{CONCURRENCY_PARAMETER} must be a Number, default 1, MinValue 0, MaxValue 1")
    for name, function in sorted(functions(template).items()):
        value = function.get("Properties", {}).get("ReservedConcurrentExecutions")
        ok = (
            isinstance(value, dict) and set(value) == {"Fn::If"}
            and value["Fn::If"][1:] == [{"Ref": CONCURRENCY_PARAMETER}, NO_VALUE]
            and conditions.get(value["Fn::If"][0]) in (
                {"Fn::Not": [{"Fn::Equals": [{"Ref": CONCURRENCY_PARAMETER}, zero]}]} for zero in ("0", 0)
            )
        )
        if not ok:
            problems.append(
                f"{name}: ReservedConcurrentExecutions must be !If [C, !Ref {CONCURRENCY_PARAMETER}, !Ref AWS::NoValue] "
                f"with C: !Not [!Equals [!Ref {CONCURRENCY_PARAMETER}, \"0\"]] (Lambda reads 0 as throttle all), "
                f"not {json.dumps(value)}"
            )


def alarm_job(alarm):
    for dimension in alarm.get("Properties", {}).get("Dimensions", []) or []:
        if dimension.get("Name") == "Job":
            return dimension.get("Value")
    return None


def check_job_alarms(template, problems):
    resources = template["Resources"]
    jobs = {}
    for name, function in functions(template).items():
        job = JOB_OF_HANDLER.get(function.get("Properties", {}).get("Handler"))
        if job is None:
            problems.append(f"{name}: handler {function.get('Properties', {}).get('Handler')!r} names no job")
        else:
            jobs[job] = function.get("Condition")
    for job in JOB_DIMENSIONS:
        if job not in jobs:
            problems.append(f"no function runs the {job} job")
    alarms = {n: r for n, r in resources.items() if r.get("Type") == ALARM}
    for name, alarm in sorted(alarms.items()):
        job = alarm_job(alarm)
        if job is None:
            continue
        p = alarm["Properties"]
        wrong = []
        if job not in JOB_DIMENSIONS:
            problems.append(f"{name}: Job dimension {json.dumps(job)} is none of {sorted(JOB_DIMENSIONS)}")
            continue
        if p.get("Namespace") != {"Ref": "MetricsNamespace"}:
            wrong.append("Namespace !Ref MetricsNamespace")
        expected = [{"Name": "Job", "Value": job}] + JOB_DIMENSIONS[job]
        if canonical(p.get("Dimensions")) != canonical(expected):
            wrong.append(f"dimensions Job={job} plus {json.dumps(JOB_DIMENSIONS[job])}")
        if alarm.get("Condition") != jobs.get(job):
            wrong.append(f"the {job} job's condition {jobs.get(job)!r}, not {alarm.get('Condition')!r}")
        if wrong:
            problems.append(f"{name} (Job {job}) needs " + "; ".join(wrong))
    for job, metric in JOB_ALARMS:
        found = [
            n for n, a in sorted(alarms.items())
            if alarm_job(a) == job and a["Properties"].get("MetricName") == metric
        ]
        if not found:
            problems.append(f"the {job} job has no alarm on {metric} (with the Job={job} dimension set)")
        for name in found:
            p = alarms[name]["Properties"]
            if (p.get("Statistic"), p.get("ComparisonOperator"), number(p.get("Threshold"))) != (
                "Maximum", "GreaterThanThreshold", 0.0
            ):
                problems.append(f"{name}: expected Maximum > 0 of {metric}")
            if p.get("TreatMissingData") != "notBreaching":
                problems.append(f"{name}: TreatMissingData must be notBreaching (no record, nothing failed)")
            if metric == "WritesFailed" and (number(p.get("Period")), number(p.get("EvaluationPeriods"))) != (300, 2):
                problems.append(f"{name}: WritesFailed alarms over two 5-minute periods in a row (Period 300, EvaluationPeriods 2)")
            if not p.get("AlarmDescription"):
                problems.append(f"{name}: no AlarmDescription")


def unresolved_uses(value, where, found):
    """Where `value` reads a per-account parameter other than through its
    resolved form."""
    if isinstance(value, dict):
        if any(value == resolved(p) for p in PER_ACCOUNT):
            return
        if set(value) == {"Ref"} and value["Ref"] in PER_ACCOUNT:
            found.append(f"{where}: !Ref {value['Ref']}")
            return
        if set(value) == {"Fn::Sub"}:
            sub = value["Fn::Sub"]
            text, variables = (sub, {}) if isinstance(sub, str) else (sub[0], sub[1] if len(sub) > 1 else {})
            for parameter in PER_ACCOUNT:
                if isinstance(text, str) and "${" + parameter + "}" in text and parameter not in variables:
                    found.append(f"{where}: ${{{parameter}}} in a !Sub")
            unresolved_uses(variables, where, found)
            return
        for key, item in value.items():
            unresolved_uses(item, f"{where}.{key}", found)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            unresolved_uses(item, f"{where}[{index}]", found)


def refs(value):
    if isinstance(value, dict):
        if set(value) == {"Ref"}:
            yield value["Ref"]
        for item in value.values():
            yield from refs(item)
    elif isinstance(value, list):
        for item in value:
            yield from refs(item)


def or_branches(value):
    """Every Fn::Or in `value`, as its list of branches."""
    if isinstance(value, dict):
        if set(value) == {"Fn::Or"}:
            yield value["Fn::Or"]
        for item in value.values():
            yield from or_branches(item)
    elif isinstance(value, list):
        for item in value:
            yield from or_branches(item)


def check_per_account_values(template, problems):
    found = []
    for section in ("Resources", "Outputs"):
        for name, item in sorted(template.get(section, {}).items()):
            unresolved_uses(item, f"{section}.{name}", found)
    problems.extend(
        f"{f}: read the resolved value instead (the SSM parameter's when one is named), "
        "!If [Has<P>SsmParameter, !Sub \"{{resolve:ssm:${<P>SsmParameter}}}\", !Ref <P>]"
        for f in found
    )
    conditions = template.get("Conditions", {})
    for name, condition in sorted(conditions.items()):
        named = set(refs(condition)) & set(PER_ACCOUNT)
        for parameter in sorted(named):
            if name != f"Has{parameter}" or condition != set_condition(parameter):
                problems.append(
                    f"condition {name} tests {parameter}: only Has{parameter} may, as "
                    f"{json.dumps(set_condition(parameter))} (use !Condition Has{parameter})"
                )
    for name, rule in sorted(template.get("Rules", {}).items()):
        for branches in or_branches(rule):
            for parameter in PER_ACCOUNT:
                if not_empty(parameter) in branches and not_empty(ssm_parameter(parameter)) not in branches:
                    problems.append(
                        f"rule {name} accepts {parameter} as set but not {ssm_parameter(parameter)}: "
                        f"add !Not [!Equals [!Ref {ssm_parameter(parameter)}, \"\"]] to the same !Or"
                    )
        named = [r for r in refs(rule) if r in PER_ACCOUNT]
        in_ors = [r for branches in or_branches(rule) for r in refs(branches) if r in PER_ACCOUNT]
        if sorted(named) != sorted(in_ors):
            problems.append(f"rule {name} tests a per-account parameter outside an !Or with its SSM parameter")


def main() -> int:
    template, errors = decode(str(ROOT / "template.yaml"))
    if errors:
        print("\n".join(str(e) for e in errors))
        return 1
    failed = False
    for what, check, verdict in (
        ("alarm actions", check_alarm_actions, "every alarm notifies AlarmTopicArn, else the stack's AlarmTopic"),
        ("target groups", check_target_group_pattern,
         f"{TARGET_GROUPS_PARAMETER} accepts whole target group ARNs only (and empty), no wildcard"),
        ("heartbeats", check_heartbeats, "every scheduled function has a heartbeat alarm on its Invocations"),
        ("rule targets", check_rule_targets,
         "every EventBridge target has a RetryPolicy and its function's dead-letter queue"),
        ("spot warnings", check_spot_warnings,
         "egress, targets and eip run on the Spot interruption warning, with their state-change rules' State"),
        ("parameter groups", check_parameter_groups, "every parameter is in exactly one parameter group"),
        ("reserved concurrency", check_reserved_concurrency,
         f"every function's reserved concurrency is {CONCURRENCY_PARAMETER} (0: none)"),
        ("job alarms", check_job_alarms,
         "WritesFailed alarms for every job, TablesLeftAlone (egress), ChangesWithheld (eip), on the Job dimensions"),
        ("per-account values", check_per_account_values,
         "every use of VpcId, ClusterName and SourceRouteTableId reads the resolved value (SSM when named)"),
    ):
        problems = []
        check(template, problems)
        for p in problems:
            print(f"check_template: {what}: {p}", file=sys.stderr)
        if problems:
            failed = True
        else:
            print(f"check_template: {what}: {verdict}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
