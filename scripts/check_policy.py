#!/usr/bin/env python3
"""Checks that template.yaml grants each function exactly the statements of
its policy file, and that every write those statements allow is scoped.

routes: the policies of FunctionRole, in order ("kube-rtsync", then
"deny-cluster-tables" under the HasClusterName condition, then
"deny-source-table" under HasSourceRouteTableId, then "change-events"), are
the statements of policies/kube-rtsync.json: both keep the same ${...}
placeholders (VpcId, ClusterName, SourceRouteTableId, EventBusName). Reads
are DescribeRouteTables and DescribeInstances on "*"; route writes are
allowed on route tables with the ec2:Vpc condition only; and they are denied,
whenever ClusterName is set, on the tables tagged
KubernetesCluster=<ClusterName> and on those with the tag key
kubernetes.io/cluster/<ClusterName>, and, whenever SourceRouteTableId is set,
on that table. Every condition key of a route write is one the Service
Authorization Reference offers for it. The function runs as FunctionRole and
reads the same parameters under the same conditions; the role holds nothing
else but its logs, its dead-letter queue and its change events. The created
topic's policy lets only Auto Scaling's service-linked role and the
TopicPublisherArns publish, and only over TLS.

egress: the "egress" policy of EgressRole followed by its "change-events"
policy is policies/egress.json once the EgressTagKey and EgressRouterId
parameters are replaced by their defaults; its reads are Describe* only
(among them DescribeInstanceStatus and DescribeSpotInstanceRequests, the
leaving NATs); every write names a resource type (never "*") and carries the
enrolment-tag condition; route writes stay in the VPC; tag writes touch only
the failback-clock tag; the source/destination fix is the only attribute
change; and the role holds nothing else but its logs, its dead-letter queue,
its change events and (in a VPC) its network interfaces.

targets: the "targets" policy of TargetsRole followed by its "change-events"
policy is policies/targets.json once the file's example target group ARNs
are replaced by the TargetGroupArns parameter; its reads are Describe* only,
on "*" (among them DescribeInstanceStatus and DescribeSpotInstanceRequests,
the leaving nodes); its writes (RegisterTargets, DeregisterTargets) are on
the TargetGroupArns parameter and nothing else, and the file's examples are
target group ARNs without wildcards; the function reads the same list
(TARGET_GROUP_ARNS); and the role holds nothing else but its logs, its
dead-letter queue and its change events.

eip: the "eip" policy of EipRole followed by its "eip-dns" policy (present
only under the EipHasDns condition) and its "change-events" policy is
policies/eip.json, statement for statement: both keep the same ${...}
placeholders (the EipPoolTagKey, EipPoolTagValue, DnsZoneId, DnsSuffix, VpcId
and EventBusName parameters, and the !Sub variable EipBindingTable, the
binding table's name). Its reads are ec2:Describe* on "*" (among them
DescribeInstanceStatus and DescribeSpotInstanceRequests, the leaving nodes),
route53:ListResourceRecordSets on the one hosted zone
and dynamodb:Scan on the one table; every write names a resource type: pool
Elastic IPs (the pool-tag condition), the VPC's network interfaces (ec2:Vpc),
instances (AssociateAddress only; EC2 offers no ec2:Vpc there), the hosted
zone (A records only, UPSERT and DELETE only, names under DnsSuffix) and the
table; the Route 53 statements live only in eip-dns; the function reads the
same table, zone and suffix; and the role holds nothing else but its logs, its
dead-letter queue and its change events.

Change events (every job): each role's "change-events" policy is attached
only under the HasEventBus condition (EventBusName is not none), else nothing
(!If [HasEventBus, ..., !Ref AWS::NoValue]), and holds exactly one statement:
events:PutEvents, no condition, on the EventBusName bus, never "*": the
parameter itself when it is an ARN (EventBusIsArn: it starts with "arn:"),
else arn:${AWS::Partition}:events:${AWS::Region}:${AWS::AccountId}:event-bus/
<name>. Each policy file ends with that statement, its resource spelled with
the placeholder ${EventBusName} (the name form); any other statement naming
EventBridge, in a file or a role, is a finding. The function reads the same
bus (EVENT_BUS_NAME: !Ref EventBusName). EventBusName is a String defaulting
to default, whose AllowedPattern accepts a bus name, a bus ARN or none and
refuses wildcards, an empty value, "arn" alone and other spellings of none
(which the functions would read as none while the roles kept a policy).

Resource policies: each function's dead-letter queue has one queue policy
(under the function's condition) with one statement: events.amazonaws.com may
sqs:SendMessage to that queue only for the function's own EventBridge rules
(aws:SourceArn, ArnEquals, exactly the rules of its Schedule, CloudWatchEvent
and EventBridgeRule events, the Spot interruption warnings' among them), the
events those rules could not deliver. The created alarm topic (AlarmTopic,
under CreateAlarmTopic) lets only CloudWatch publish, for alarms of this
account and region (aws:SourceAccount and aws:SourceArn), and denies
publishing without TLS. No other queue or topic policy names these queues or
topics.

Per-account values: VpcId, ClusterName and SourceRouteTableId may each come
from an SSM parameter instead (VpcIdSsmParameter, ...: String, default empty),
which wins when set. Every use reads the resolved value, !If [Has<P>SsmParameter,
!Sub "{{resolve:ssm:${<P>SsmParameter}}}", !Ref <P>]: the functions' VPC_ID,
KUBE_CLUSTER_NAME and SOURCE_ROUTE_TABLE_ID, and the policies, where it is the
!Sub variable <P>Value (the policy files spell it ${<P>}); a policy naming the
parameter itself is a finding. HasClusterName and HasSourceRouteTableId hold
when the parameter or its SSM parameter is set (SSM values are never empty).

The JSON files keep CloudFormation's ${...} placeholders; the template wraps
the same strings in !Sub.
"""
import json
import re
import sys
from pathlib import Path

from cfnlint.decode import decode  # cfn-lint's YAML loader understands !Sub and friends

ROOT = Path(__file__).resolve().parent.parent

ROUTES_WRITES = {"ec2:CreateRoute", "ec2:ReplaceRoute", "ec2:DeleteRoute"}
ROUTES_EC2_ARN = "arn:${AWS::Partition}:ec2:${AWS::Region}:${AWS::AccountId}:"
ROUTE_TABLES = ROUTES_EC2_ARN + "route-table/*"
# In the Service Authorization Reference (iann0036/iam-dataset,
# aws/iam_definition.json), CreateRoute, ReplaceRoute and DeleteRoute each take
# the one resource type route-table (arn:${Partition}:ec2:${Region}:${Account}:
# route-table/${RouteTableId}) with these condition keys, and
# DescribeRouteTables and DescribeInstances (the check that a launched
# instance is a node of the cluster) take no resource type ("*" only).
ROUTES_WRITE_CONDITION_KEYS = ("aws:ResourceTag/", "ec2:ResourceTag/", "ec2:Region", "ec2:RouteTableID", "ec2:Vpc")
ROUTES_ALLOWS = [
    {"Effect": "Allow", "Action": ["ec2:DescribeInstances", "ec2:DescribeRouteTables"], "Resource": "*"},
    {
        "Effect": "Allow",
        "Action": sorted(ROUTES_WRITES),
        "Resource": ROUTE_TABLES,
        "Condition": {"ArnEquals": {"ec2:Vpc": ROUTES_EC2_ARN + "vpc/${VpcId}"}},
    },
]
# The conditional policies of FunctionRole: name -> (condition, parameter,
# the Deny statements it must hold, Sid aside). Never write to the source
# table: the tables tagged for the cluster (either tag style) when ClusterName
# is set, the SourceRouteTableId table when that is set.
ROUTES_DENIES = {
    "deny-cluster-tables": ("HasClusterName", "ClusterName", [
        {
            "Effect": "Deny",
            "Action": sorted(ROUTES_WRITES),
            "Resource": ROUTE_TABLES,
            "Condition": {"StringEquals": {"aws:ResourceTag/KubernetesCluster": "${ClusterName}"}},
        },
        {
            "Effect": "Deny",
            "Action": sorted(ROUTES_WRITES),
            "Resource": ROUTE_TABLES,
            "Condition": {"Null": {"aws:ResourceTag/kubernetes.io/cluster/${ClusterName}": "false"}},
        },
    ]),
    "deny-source-table": ("HasSourceRouteTableId", "SourceRouteTableId", [
        {
            "Effect": "Deny",
            "Action": sorted(ROUTES_WRITES),
            "Resource": ROUTES_EC2_ARN + "route-table/${SourceRouteTableId}",
        },
    ]),
}
ROUTES_MANAGED_POLICIES = {"AWSLambdaBasicExecutionRole"}  # its logs; it never runs in the VPC

# The per-account parameters, each of which may come from SSM instead.
PER_ACCOUNT = ("VpcId", "ClusterName", "SourceRouteTableId")


def ssm_parameter(parameter):
    return parameter + "SsmParameter"


def ssm_condition(parameter):
    return "Has" + parameter + "SsmParameter"


def resolved(parameter):
    """The value every use of a per-account parameter must read: its SSM
    parameter's value when that is named, else the parameter."""
    return {"Fn::If": [
        ssm_condition(parameter),
        {"Fn::Sub": "{{resolve:ssm:${" + ssm_parameter(parameter) + "}}}"},
        {"Ref": parameter},
    ]}


def sub_variable(parameter):
    """The !Sub variable standing for a resolved per-account value in the
    policy documents."""
    return parameter + "Value"


def resolved_variables(*parameters):
    return {sub_variable(p): resolved(p) for p in parameters}


def sub_document(document, expected, name, problems):
    """The text of a !Sub'ed JSON policy document, with its per-account
    variables spelled as the policy files spell the parameters (${VpcIdValue}
    as ${VpcId}); None when it is no !Sub of a string. Its variable map must
    be `expected`, exactly, and it must not name a per-account parameter
    itself (that would bypass its SSM parameter)."""
    if not (isinstance(document, dict) and set(document) == {"Fn::Sub"}):
        return None
    sub = document["Fn::Sub"]
    if isinstance(sub, str):
        text, variables = sub, {}
    elif isinstance(sub, list) and len(sub) == 2 and isinstance(sub[0], str) and isinstance(sub[1], dict):
        text, variables = sub
    else:
        return None
    if variables != expected:
        problems.append(
            f"{name} must define exactly the !Sub variables {json.dumps(expected)}, not {json.dumps(variables)}"
        )
    for parameter in PER_ACCOUNT:
        if "${" + parameter + "}" in text:
            problems.append(
                f"{name} names ${{{parameter}}}: it must read the resolved value ${{{sub_variable(parameter)}}} "
                f"(the parameter, or {ssm_parameter(parameter)}'s value when that is set)"
            )
        text = text.replace("${" + sub_variable(parameter) + "}", "${" + parameter + "}")
    return text


def check_per_account_parameters(template, problems):
    """Each per-account parameter has its SSM parameter (String, default
    empty, an SSM name) and the condition that says it is set."""
    parameters = template.get("Parameters", {})
    conditions = template.get("Conditions", {})
    for parameter in PER_ACCOUNT:
        name = ssm_parameter(parameter)
        spec = parameters.get(name)
        if spec is None:
            problems.append(f"no {name} parameter (the SSM parameter {parameter} may come from)")
            continue
        if (spec.get("Type"), spec.get("Default")) != ("String", ""):
            problems.append(f"{name} must be a String defaulting to empty (unused)")
        pattern = spec.get("AllowedPattern", "")
        if not pattern or re.fullmatch(pattern, "") is None or re.fullmatch(pattern, "/kube-rtsync/x") is None:
            problems.append(f"{name} needs an AllowedPattern accepting empty and SSM parameter names")
        elif re.fullmatch(pattern, "x}}{{resolve:ssm:y") is not None or re.fullmatch(pattern, "x y") is not None:
            problems.append(f"{name}'s AllowedPattern must refuse what is no SSM parameter name")
        if conditions.get(ssm_condition(parameter)) != not_empty(name):
            problems.append(f"the {ssm_condition(parameter)} condition must be !Not [!Equals [!Ref {name}, \"\"]]")


def set_condition(parameter):
    """Whether a per-account parameter is set, literally or through SSM."""
    return {"Fn::Or": [not_empty(parameter), {"Condition": ssm_condition(parameter)}]}


# Change events: each role's "change-events" policy, present under HasEventBus
# (EventBusName is not none) and else nothing, is one statement, PutEvents on
# the EventBusName bus: the ARN itself when the parameter is one
# (EventBusIsArn), else the bus of that name in this account and Region. The
# policy files end with that statement, the bus spelled ${EventBusName}. In the
# Service Authorization Reference (iann0036/iam-dataset) events:PutEvents takes
# the event-bus resource type (arn:${Partition}:events:${Region}:${Account}:
# event-bus/${EventBusName}).
EVENTS_POLICY = "change-events"
EVENT_BUS_PARAMETER, EVENT_BUS_VARIABLE = "EventBusName", "EVENT_BUS_NAME"
EVENT_BUS_CONDITION, EVENT_BUS_ARN_CONDITION = "HasEventBus", "EventBusIsArn"
NO_EVENT_BUS = "none"
EVENT_BUS_ARN = "arn:${AWS::Partition}:events:${AWS::Region}:${AWS::AccountId}:event-bus/${EventBusName}"
EVENTS_STATEMENT = {"Effect": "Allow", "Action": "events:PutEvents", "Resource": EVENT_BUS_ARN}
EVENT_BUS_RESOURCE = {"Fn::If": [EVENT_BUS_ARN_CONDITION, {"Ref": EVENT_BUS_PARAMETER}, {"Fn::Sub": EVENT_BUS_ARN}]}
EVENT_BUS_CONDITIONS = {
    EVENT_BUS_CONDITION: {"Fn::Not": [{"Fn::Equals": [{"Ref": EVENT_BUS_PARAMETER}, NO_EVENT_BUS]}]},
    EVENT_BUS_ARN_CONDITION: {
        "Fn::Equals": [{"Fn::Select": [0, {"Fn::Split": [":", {"Ref": EVENT_BUS_PARAMETER}]}]}, "arn"]
    },
}
# What the parameter must accept (what the functions take) and refuse: a
# wildcard would widen the roles' scope; "arn" alone would pass for an ARN;
# another spelling of none turns the events off in the functions while the
# roles keep a policy.
EVENT_BUS_ACCEPTED = [
    "default", NO_EVENT_BUS, "kube-rtsync", "platform/kube-rtsync", "aws.partner/example.com/123/changes",
    "arn:aws:events:eu-west-1:123456789012:event-bus/platform-audit",
    "arn:aws-us-gov:events:us-gov-west-1:123456789012:event-bus/default",
    "b" * 256,
]
EVENT_BUS_REFUSED = [
    "", "*", "bus*", "my bus", "bus:1", "arn", "NONE", "None", "b" * 257,
    "arn:aws:events:eu-west-1:123456789012:event-bus/*",
    "arn:aws:events:*:123456789012:event-bus/default",
    "arn:aws:events:eu-west-1:*:event-bus/default",
    "arn:aws:events:eu-west-1:1234:event-bus/default",
    "arn:*:events:eu-west-1:123456789012:event-bus/default",
    "arn:aws:events:eu-west-1:123456789012:rule/default",
    "arn:aws:sns:eu-west-1:123456789012:topic",
]


def policy_name(policy):
    """An inline policy's name, through an Fn::If's first branch."""
    if isinstance(policy, dict) and set(policy) == {"Fn::If"}:
        arguments = policy["Fn::If"]
        then = arguments[1] if isinstance(arguments, list) and len(arguments) == 3 else None
        return then.get("PolicyName") if isinstance(then, dict) else None
    return policy.get("PolicyName") if isinstance(policy, dict) else None


def check_event_bus_parameter(template, problems):
    """EventBusName: a String defaulting to the default bus, whose pattern
    takes what the functions take and no wildcard; the two conditions."""
    spec = template.get("Parameters", {}).get(EVENT_BUS_PARAMETER)
    if spec is None:
        problems.append(f"no {EVENT_BUS_PARAMETER} parameter (the bus of the change events, {EVENT_BUS_VARIABLE})")
        return
    if (spec.get("Type"), spec.get("Default")) != ("String", "default"):
        problems.append(f"{EVENT_BUS_PARAMETER} must be a String defaulting to default (the account's default bus)")
    if EVENT_BUS_VARIABLE not in str(spec.get("Description", "")):
        problems.append(f"{EVENT_BUS_PARAMETER}'s Description must name {EVENT_BUS_VARIABLE}")
    try:
        pattern = re.compile(spec.get("AllowedPattern", ""))
    except re.error as error:
        problems.append(f"{EVENT_BUS_PARAMETER}'s AllowedPattern is not a regular expression: {error}")
        return
    if not spec.get("AllowedPattern"):
        problems.append(f"{EVENT_BUS_PARAMETER} has no AllowedPattern: \"*\" would become the roles' scope")
        return
    for value in EVENT_BUS_ACCEPTED:
        if pattern.fullmatch(value) is None:
            problems.append(f"{EVENT_BUS_PARAMETER}'s AllowedPattern refuses {value!r}")
    for value in EVENT_BUS_REFUSED:
        if pattern.fullmatch(value) is not None:
            problems.append(f"{EVENT_BUS_PARAMETER}'s AllowedPattern accepts {value!r}")
    conditions = template.get("Conditions", {})
    for name, definition in EVENT_BUS_CONDITIONS.items():
        if conditions.get(name) != definition:
            problems.append(
                f"the {name} condition must be {json.dumps(definition)}, not {json.dumps(conditions.get(name))}"
            )


def change_events_from_template(template, role_name, function_name, problems):
    """The role's change-events statement, with the bus spelled as the policy
    files spell it; None when absent or wrong. The function reads the same
    bus."""
    resources = template["Resources"]
    role = resources[role_name]["Properties"]
    variables = resources[function_name]["Properties"].get("Environment", {}).get("Variables", {})
    if variables.get(EVENT_BUS_VARIABLE) != {"Ref": EVENT_BUS_PARAMETER}:
        problems.append(
            f"{function_name}'s {EVENT_BUS_VARIABLE} must be !Ref {EVENT_BUS_PARAMETER}, the bus its role is scoped to"
        )
    found = [p for p in role.get("Policies", []) if policy_name(p) == EVENTS_POLICY]
    if len(found) != 1:
        problems.append(f"{role_name} must have exactly one {EVENTS_POLICY} policy, not {len(found)}")
        return None
    (policy,) = found
    if set(policy) != {"Fn::If"} or policy["Fn::If"][0] != EVENT_BUS_CONDITION or policy["Fn::If"][2] != {
        "Ref": "AWS::NoValue"
    }:
        problems.append(
            f"{role_name}'s {EVENTS_POLICY} policy must be attached only under the {EVENT_BUS_CONDITION} condition, "
            f"else nothing: !If [{EVENT_BUS_CONDITION}, {{PolicyName: {EVENTS_POLICY}, ...}}, !Ref AWS::NoValue]"
        )
        return None
    then = policy["Fn::If"][1]
    document = then.get("PolicyDocument")
    if set(then) != {"PolicyName", "PolicyDocument"} or not isinstance(document, dict):
        problems.append(f"{role_name}'s {EVENTS_POLICY} policy must be a PolicyName and a PolicyDocument object")
        return None
    statements = document.get("Statement")
    expected = {**EVENTS_STATEMENT, "Resource": EVENT_BUS_RESOURCE}
    if (
        set(document) != {"Version", "Statement"} or document.get("Version") != "2012-10-17"
        or not isinstance(statements, list) or len(statements) != 1 or normalised(statements[0]) != expected
    ):
        problems.append(
            f"{role_name}'s {EVENTS_POLICY} policy must hold exactly one statement, events:PutEvents on the "
            f"{EVENT_BUS_PARAMETER} bus: expected {json.dumps(expected)}, not {json.dumps(statements)}"
        )
        return None
    return {**statements[0], "Resource": EVENT_BUS_ARN}


def split_change_events(document, name, problems):
    """A policy file: its statements but the last, which must be the
    change-events statement (EVENTS_STATEMENT); the job's checks see the rest,
    so that any other statement naming EventBridge stays a finding."""
    statements = document.get("Statement", [])
    if not statements or normalised(statements[-1]) != EVENTS_STATEMENT:
        problems.append(
            f"{name} must end with the change-events statement {json.dumps(EVENTS_STATEMENT)}, "
            f"not {json.dumps(statements[-1:])}"
        )
        return document
    return {**document, "Statement": statements[:-1]}
# Auto Scaling publishes its notifications as its service-linked role (the
# default one, or one with a custom suffix).
AUTOSCALING_ROLES = (
    "arn:${AWS::Partition}:iam::${AWS::AccountId}:role/aws-service-role/autoscaling.amazonaws.com/"
    "AWSServiceRoleForAutoScaling*"
)

# The egress job's whole vocabulary: anything else in its policy is a finding.
EGRESS_READS = {
    "ec2:DescribeInstanceStatus",
    "ec2:DescribeInstances",
    "ec2:DescribeNatGateways",
    "ec2:DescribeRouteTables",
    "ec2:DescribeSpotInstanceRequests",
    "ec2:DescribeSubnets",
}
EGRESS_WRITES = {
    # action: (resource type it must be scoped to, whether the service
    # authorization reference offers ec2:Vpc for that action on that type)
    "ec2:CreateRoute": ("route-table", True),
    "ec2:ReplaceRoute": ("route-table", True),
    "ec2:CreateTags": ("route-table", True),
    "ec2:DeleteTags": ("route-table", False),
    "ec2:ModifyInstanceAttribute": ("instance", False),
}
# The template parameters standing for the enrolment tag, and the environment
# variables the function reads them from.
TAG_KEY_PARAMETER, ROUTER_ID_PARAMETER = "EgressTagKey", "EgressRouterId"
TAG_KEY_VARIABLE, ROUTER_ID_VARIABLE = "EGRESS_TAG_KEY", "EGRESS_ROUTER_ID"
CLOCK_TAG = "kube-rtsync/egress-healthy-since"
EGRESS_MANAGED_POLICIES = {
    "AWSLambdaBasicExecutionRole",  # its logs, as SAM gives the routes function
    "AWSLambdaVPCAccessExecutionRole",  # network interfaces, only when in the VPC
}

# The targets job's whole vocabulary. In the Service Authorization Reference
# (iann0036/iam-dataset, aws/iam_definition.json) the five reads have no
# resource type and no condition key, so "*" is the only Resource they take
# (DescribeInstanceStatus and DescribeSpotInstanceRequests: the leaving nodes);
# RegisterTargets and DeregisterTargets require the targetgroup resource type
# (arn:${Partition}:elasticloadbalancing:${Region}:${Account}:targetgroup/
# ${TargetGroupName}/${TargetGroupId}) and offer only the tag keys below.
TARGETS_READS = {
    "ec2:DescribeInstanceStatus",
    "ec2:DescribeInstances",
    "ec2:DescribeSpotInstanceRequests",
    "elasticloadbalancing:DescribeTargetGroups",
    "elasticloadbalancing:DescribeTargetHealth",
}
TARGETS_WRITES = {
    "elasticloadbalancing:DeregisterTargets",
    "elasticloadbalancing:RegisterTargets",
}
TARGETS_WRITE_CONDITION_KEYS = ("aws:ResourceTag/", "elasticloadbalancing:ResourceTag/")
# The template parameter listing the groups, and the variable the function
# reads them from.
TARGET_GROUPS_PARAMETER, TARGET_GROUPS_VARIABLE = "TargetGroupArns", "TARGET_GROUP_ARNS"
# An example group in policies/targets.json: a whole ARN, placeholders for
# partition, region and account, a concrete name and id (no wildcard).
TARGET_GROUP_EXAMPLE = re.compile(
    r"^arn:\$\{AWS::Partition\}:elasticloadbalancing:\$\{AWS::Region\}:\$\{AWS::AccountId\}"
    r":targetgroup/[A-Za-z0-9-]{1,32}/[0-9a-f]{16}$"
)
TARGETS_MANAGED_POLICIES = {"AWSLambdaBasicExecutionRole"}  # its logs; it never runs in the VPC


def unsub(value):
    """Replaces {"Fn::Sub": "text"} by "text", recursively."""
    if isinstance(value, dict):
        if set(value) == {"Fn::Sub"} and isinstance(value["Fn::Sub"], str):
            return value["Fn::Sub"]
        return {k: unsub(v) for k, v in value.items()}
    if isinstance(value, list):
        return [unsub(v) for v in value]
    return value


def as_set(value):
    return {value} if isinstance(value, str) else set(value or [])


def differ(name, from_template, from_file):
    return (f"template.yaml and {name} differ:\n"
            f"  template: {json.dumps(from_template, sort_keys=True)}\n"
            f"  file:     {json.dumps(from_file, sort_keys=True)}")


def normalised(statement):
    """A statement without its Sid, its Action as a sorted list."""
    statement = {k: v for k, v in statement.items() if k != "Sid"}
    if "Action" in statement and not isinstance(statement["Action"], str):
        statement["Action"] = sorted(statement["Action"])
    return statement


# The !Sub variables of FunctionRole's policies: the resolved values they name.
ROUTES_VARIABLES = {
    "kube-rtsync": resolved_variables("VpcId"),
    "deny-cluster-tables": resolved_variables("ClusterName"),
    "deny-source-table": resolved_variables("SourceRouteTableId"),
}


def not_empty(parameter):
    return {"Fn::Not": [{"Fn::Equals": [{"Ref": parameter}, ""]}]}


def routes_policies_from_template(template, problems):
    """FunctionRole's "kube-rtsync", "deny-cluster-tables" and
    "deny-source-table" documents, parsed; None where absent or malformed."""
    role = template["Resources"]["FunctionRole"]["Properties"]
    documents = {}
    for policy in role.get("Policies", []):
        if policy_name(policy) == EVENTS_POLICY:
            continue  # change_events_from_template
        conditional = set(policy) == {"Fn::If"}
        if conditional:
            condition, then, otherwise = policy["Fn::If"]
            name = then.get("PolicyName")
            expected = ROUTES_DENIES.get(name, (None,))[0]
            if condition != expected or otherwise != {"Ref": "AWS::NoValue"}:
                problems.append(
                    "FunctionRole: the conditional policies must be deny-cluster-tables under HasClusterName "
                    f"and deny-source-table under HasSourceRouteTableId, else nothing; not {name!r} under {condition!r}"
                )
                continue
            policy = then
        name = policy.get("PolicyName")
        if name not in {"kube-rtsync", *ROUTES_DENIES}:
            continue
        if (name in ROUTES_DENIES) != conditional:
            problems.append(f"FunctionRole's {name} policy must be attached " + (
                f"only under the {ROUTES_DENIES[name][0]} condition" if name in ROUTES_DENIES else "unconditionally"))
            continue
        text = sub_document(policy.get("PolicyDocument"), ROUTES_VARIABLES[name], f"FunctionRole's {name} policy", problems)
        if not isinstance(text, str):
            problems.append(f"FunctionRole's {name} policy must be a !Sub'ed JSON document")
            continue
        try:
            documents[name] = json.loads(text)
        except json.JSONDecodeError as error:
            problems.append(f"FunctionRole's {name} policy is not JSON: {error}")
    for name in ("kube-rtsync", *ROUTES_DENIES):
        if name not in documents:
            problems.append(f"FunctionRole has no readable policy named {name}")
    return documents


def check_routes_statements(policy, problems):
    """Reads on "*"; route writes allowed only on the VPC's route tables, and
    denied on the tables tagged for the cluster and on the source table."""
    statements = policy["Statement"]
    for statement in statements:
        sid = statement.get("Sid")
        if "NotAction" in statement or "NotResource" in statement or "Principal" in statement:
            problems.append(f"{sid}: NotAction, NotResource and Principal are not expected")
        actions = as_set(statement.get("Action"))
        unknown = actions - ROUTES_WRITES - {"ec2:DescribeRouteTables", "ec2:DescribeInstances"}
        if unknown:
            problems.append(f"{sid}: actions outside the routes job's needs: {sorted(unknown)}")
        if actions & ROUTES_WRITES:
            if statement.get("Resource") == "*" or not str(statement.get("Resource")).startswith(
                ROUTES_EC2_ARN + "route-table/"
            ):
                problems.append(f"{sid}: route writes must be scoped to route tables, not {statement.get('Resource')!r}")
            for keys in statement.get("Condition", {}).values():
                for key in keys:
                    known = any(
                        key.startswith(k) if k.endswith("/") else key == k for k in ROUTES_WRITE_CONDITION_KEYS
                    )
                    if not known:
                        problems.append(
                            f"{sid}: {key} is not a condition key of the route writes "
                            f"(Service Authorization Reference: {', '.join(ROUTES_WRITE_CONDITION_KEYS)})"
                        )
    allows = [normalised(s) for s in statements if s.get("Effect") == "Allow"]
    if allows != ROUTES_ALLOWS:
        problems.append(
            "the allowed statements must be exactly DescribeRouteTables on \"*\" and the route writes on route "
            f"tables with the ec2:Vpc condition: expected {json.dumps(ROUTES_ALLOWS)}, not {json.dumps(allows)}"
        )
    denies = [normalised(s) for s in statements if s.get("Effect") == "Deny"]
    expected = [s for _, _, wanted in ROUTES_DENIES.values() for s in wanted]
    if denies != expected:
        problems.append(
            "the route writes must be denied on the tables tagged KubernetesCluster=${ClusterName}, on those with "
            "the tag key kubernetes.io/cluster/${ClusterName} and on route-table/${SourceRouteTableId}: "
            f"expected {json.dumps(expected)}, not {json.dumps(denies)}"
        )


def check_routes_role(template, problems):
    """The function runs as FunctionRole and reads the parameters the role's
    Denies name, under the same conditions; the role holds its policies, its
    dead-letter queue and its logs, nothing else."""
    resources = template["Resources"]
    conditions = template.get("Conditions", {})
    function = resources["Function"]["Properties"]
    if function.get("Role") != {"Fn::GetAtt": ["FunctionRole", "Arn"]}:
        problems.append("Function must run as FunctionRole")
    if "Policies" in function:
        problems.append("Function must not add SAM Policies: its role is FunctionRole")
    variables = function["Environment"]["Variables"]
    for variable, (condition, parameter) in {
        "KUBE_CLUSTER_NAME": ROUTES_DENIES["deny-cluster-tables"][:2],
        "SOURCE_ROUTE_TABLE_ID": ROUTES_DENIES["deny-source-table"][:2],
    }.items():
        # The Deny must be there whenever the parameter is set, literally or
        # through its SSM parameter.
        if conditions.get(condition) != set_condition(parameter):
            problems.append(
                f"the {condition} condition must be !Or [!Not [!Equals [!Ref {parameter}, \"\"]], "
                f"!Condition {ssm_condition(parameter)}]"
            )
        value = {"Fn::If": [condition, resolved(parameter), {"Ref": "AWS::NoValue"}]}
        if variables.get(variable) != value:
            problems.append(f"Function's {variable} must be {json.dumps(value)}, what its role's Deny names")
    if variables.get("VPC_ID") != resolved("VpcId"):
        problems.append(
            f"Function's VPC_ID must be the resolved VpcId {json.dumps(resolved('VpcId'))}, what its role is scoped to"
        )
    role = resources["FunctionRole"]["Properties"]
    for policy in role.get("Policies", []):
        if set(policy) == {"Fn::If"} or policy.get("PolicyName") in {"kube-rtsync", *ROUTES_DENIES, EVENTS_POLICY}:
            continue  # checked with the documents
        if policy.get("PolicyName") != "dead-letter-queue":
            problems.append(f"FunctionRole has an unexpected inline policy {policy.get('PolicyName')!r}")
            continue
        for statement in policy["PolicyDocument"]["Statement"]:
            if as_set(statement["Action"]) != {"sqs:SendMessage"} or statement.get("Resource") != {
                "Fn::GetAtt": ["DeadLetterQueue", "Arn"]
            }:
                problems.append("FunctionRole's dead-letter-queue policy may only send to DeadLetterQueue")
    for arn in role.get("ManagedPolicyArns", []):
        text = json.dumps(arn)
        names = set(re.findall(r"service-role/(AWSLambda\w+)", text))
        if not names or not names <= ROUTES_MANAGED_POLICIES:
            problems.append(f"FunctionRole has an unexpected managed policy {text}")
    if "PermissionsBoundary" in role:
        problems.append("FunctionRole: a permissions boundary is not expected here")
    for name, resource in resources.items():
        if resource.get("Type") in {"AWS::IAM::Policy", "AWS::IAM::ManagedPolicy", "AWS::IAM::RolePolicy"}:
            if "FunctionRole" in json.dumps(resource.get("Properties", {})):
                problems.append(f"{name} adds permissions to FunctionRole; its policies belong in the role")


def check_topic_policy(template, problems):
    """The created topic: Publish only by Auto Scaling's service-linked role
    and the TopicPublisherArns (allowed, and every other principal denied),
    and never without TLS."""
    resources = template["Resources"]
    policy = resources.get("TopicPolicy")
    if policy is None or policy.get("Type") != "AWS::SNS::TopicPolicy":
        problems.append("the created topic has no TopicPolicy")
        return
    if policy.get("Condition") != "CreateTopic" or policy["Properties"].get("Topics") != [{"Ref": "Topic"}]:
        problems.append("TopicPolicy must be on Topic, under the CreateTopic condition")
    publishers = unsub({
        "Fn::If": [
            "HasTopicPublishers",
            {"Fn::Split": [",", {"Fn::Sub": [AUTOSCALING_ROLES + ",${Publishers}",
                                              {"Publishers": {"Fn::Join": [",", {"Ref": "TopicPublisherArns"}]}}]}]},
            [{"Fn::Sub": AUTOSCALING_ROLES}],
        ]
    })
    expected = [
        {"Effect": "Allow", "Principal": {"AWS": "*"}, "Action": "sns:Publish", "Resource": {"Ref": "Topic"},
         "Condition": {"ArnLike": {"aws:PrincipalArn": publishers}}},
        {"Effect": "Deny", "Principal": "*", "Action": "sns:Publish", "Resource": {"Ref": "Topic"},
         "Condition": {"ArnNotLike": {"aws:PrincipalArn": publishers}}},
        {"Effect": "Deny", "Principal": "*", "Action": "sns:Publish", "Resource": {"Ref": "Topic"},
         "Condition": {"Bool": {"aws:SecureTransport": "false"}}},
    ]
    statements = [normalised(s) for s in unsub(policy["Properties"]["PolicyDocument"]).get("Statement", [])]
    if statements != expected:
        problems.append(
            "TopicPolicy must allow sns:Publish to Auto Scaling's service-linked role and the TopicPublisherArns "
            "only, deny it to every other principal, and deny it without TLS: "
            f"expected {json.dumps(expected)}, not {json.dumps(statements)}"
        )
    conditions = template.get("Conditions", {})
    if conditions.get("HasTopicPublishers") != {
        "Fn::Not": [{"Fn::Equals": [{"Fn::Join": [",", {"Ref": "TopicPublisherArns"}]}, ""]}]
    }:
        problems.append("the HasTopicPublishers condition must be !Not [!Equals [!Join [\",\", !Ref TopicPublisherArns], \"\"]]")


RULE_EVENTS = {"Schedule", "CloudWatchEvent", "EventBridgeRule"}
ALARM_TOPIC_STATEMENTS = [
    {"Effect": "Allow", "Principal": {"Service": "cloudwatch.amazonaws.com"}, "Action": "sns:Publish",
     "Resource": {"Ref": "AlarmTopic"},
     "Condition": {"StringEquals": {"aws:SourceAccount": {"Ref": "AWS::AccountId"}},
                   "ArnLike": {"aws:SourceArn": "arn:${AWS::Partition}:cloudwatch:${AWS::Region}:${AWS::AccountId}:alarm:*"}}},
    {"Effect": "Deny", "Principal": "*", "Action": "sns:Publish", "Resource": {"Ref": "AlarmTopic"},
     "Condition": {"Bool": {"aws:SecureTransport": "false"}}},
]


def policies_naming(template, policy_type, key, logical_id):
    """The policies of policy_type whose `key` list holds !Ref logical_id."""
    return sorted(
        name for name, resource in template["Resources"].items()
        if resource.get("Type") == policy_type
        and {"Ref": logical_id} in (resource.get("Properties", {}).get(key) or [])
    )


def check_dead_letter_queue_policy(template, function_name, problems):
    """The function's dead-letter queue: EventBridge may send to it, for the
    function's own rules only; nothing else is granted."""
    resources = template["Resources"]
    function = resources[function_name]
    queue = function_name.removesuffix("Function") + "DeadLetterQueue"
    name = queue + "Policy"
    rules = sorted(
        function_name + event for event, spec in function["Properties"].get("Events", {}).items()
        if spec.get("Type") in RULE_EVENTS
    )
    named = policies_naming(template, "AWS::SQS::QueuePolicy", "Queues", queue)
    if named != [name]:
        problems.append(f"{queue} must have exactly one queue policy, {name}, not {named}")
    policy = resources.get(name)
    if policy is None:
        return
    if policy.get("Condition") != function.get("Condition") or policy["Properties"].get("Queues") != [{"Ref": queue}]:
        problems.append(f"{name} must be on {queue} alone, under {function_name}'s condition {function.get('Condition')!r}")
    document = policy["Properties"].get("PolicyDocument", {})
    statements = [normalised(s) for s in unsub(document).get("Statement", [])]
    for statement in statements:  # the rules in any order
        arns = statement.get("Condition", {}).get("ArnEquals", {}).get("aws:SourceArn")
        if isinstance(arns, list):
            arns.sort(key=json.dumps)
    expected = [{
        "Effect": "Allow", "Principal": {"Service": "events.amazonaws.com"}, "Action": "sqs:SendMessage",
        "Resource": {"Fn::GetAtt": [queue, "Arn"]},
        "Condition": {"ArnEquals": {"aws:SourceArn": [{"Fn::GetAtt": [rule, "Arn"]} for rule in rules]}},
    }]
    if document.get("Version") != "2012-10-17" or statements != expected:
        problems.append(
            f"{name} must only let EventBridge send to {queue} for {function_name}'s rules {rules}: "
            f"expected {json.dumps(expected)}, not {json.dumps(statements)}"
        )


def check_alarm_topic_policy(template, problems):
    """The created alarm topic: only CloudWatch, for this account's alarms in
    this region, publishes; never without TLS."""
    resources = template["Resources"]
    named = policies_naming(template, "AWS::SNS::TopicPolicy", "Topics", "AlarmTopic")
    if named != ["AlarmTopicPolicy"]:
        problems.append(f"AlarmTopic must have exactly one topic policy, AlarmTopicPolicy, not {named}")
    policy = resources.get("AlarmTopicPolicy")
    if policy is None:
        return
    if policy.get("Condition") != "CreateAlarmTopic" or policy["Properties"].get("Topics") != [{"Ref": "AlarmTopic"}]:
        problems.append("AlarmTopicPolicy must be on AlarmTopic alone, under the CreateAlarmTopic condition")
    statements = [normalised(s) for s in unsub(policy["Properties"].get("PolicyDocument", {})).get("Statement", [])]
    if statements != ALARM_TOPIC_STATEMENTS:
        problems.append(
            "AlarmTopicPolicy must let only cloudwatch.amazonaws.com publish (aws:SourceAccount, and aws:SourceArn "
            f"on this region's alarms) and deny publishing without TLS: expected {json.dumps(ALARM_TOPIC_STATEMENTS)}, "
            f"not {json.dumps(statements)}"
        )


def check_routes(template):
    problems = []
    if "FunctionRole" not in template["Resources"] or "Function" not in template["Resources"]:
        return ["template.yaml has no FunctionRole / Function"]
    from_file = json.loads((ROOT / "policies" / "kube-rtsync.json").read_text())
    check_per_account_parameters(template, problems)
    check_event_bus_parameter(template, problems)
    documents = routes_policies_from_template(template, problems)
    events = change_events_from_template(template, "FunctionRole", "Function", problems)
    check_routes_role(template, problems)
    check_topic_policy(template, problems)
    check_dead_letter_queue_policy(template, "Function", problems)
    check_alarm_topic_policy(template, problems)
    names = ("kube-rtsync", *ROUTES_DENIES)
    if all(name in documents for name in names):
        versions = {documents[name].get("Version") for name in names}
        if len(versions) != 1:
            problems.append("FunctionRole's policies must have the same Version")
        from_template = {
            "Version": documents["kube-rtsync"].get("Version"),
            "Statement": [s for name in names for s in documents[name]["Statement"]],
        }
        for name, (_, parameter, wanted) in ROUTES_DENIES.items():
            statements = [normalised(s) for s in documents[name]["Statement"]]
            if statements != wanted:
                problems.append(f"FunctionRole's {name} policy must hold exactly {json.dumps(wanted)}")
            if "${" + parameter + "}" in json.dumps(documents["kube-rtsync"]):
                problems.append(f"FunctionRole's kube-rtsync policy must not name {parameter}: it may be empty")
        template_problems = []
        check_routes_statements(from_template, template_problems)
        problems.extend(f"template.yaml: {p}" for p in template_problems)
        if events is not None:
            from_template["Statement"].append(events)
            if from_template != from_file:
                problems.append(differ("policies/kube-rtsync.json", from_template, from_file))
    check_routes_statements(split_change_events(from_file, "policies/kube-rtsync.json", problems), problems)
    return problems


def placeholder(parameter):
    return f"<{parameter}>"


def replace_strings(value, replacements):
    """Replaces substrings in every string of a JSON value, keys included."""
    if isinstance(value, dict):
        return {replace_strings(k, replacements): replace_strings(v, replacements) for k, v in value.items()}
    if isinstance(value, list):
        return [replace_strings(v, replacements) for v in value]
    if isinstance(value, str):
        for old, new in replacements.items():
            value = value.replace(old, new)
    return value


def egress_policy_from_template(template, problems):
    """The role's "egress" policy document, with <EgressTagKey> and
    <EgressRouterId> standing for the parameters."""
    role = template["Resources"]["EgressRole"]["Properties"]
    named = {p.get("PolicyName"): p.get("PolicyDocument") for p in role.get("Policies", [])}
    document = named.get("egress")
    if document is None:
        problems.append("EgressRole has no policy named egress")
        return None
    text = sub_document(document, resolved_variables("VpcId"), "EgressRole's egress policy", problems)
    if not isinstance(text, str):
        problems.append("EgressRole's egress policy must be a !Sub'ed JSON document (its condition keys hold a parameter)")
        return None
    for name in (TAG_KEY_PARAMETER, ROUTER_ID_PARAMETER):
        text = text.replace("${" + name + "}", placeholder(name))
    try:
        return json.loads(text)
    except json.JSONDecodeError as error:
        problems.append(f"EgressRole's egress policy is not JSON once substituted: {error}")
        return None


def check_egress_role(template, problems):
    """The role holds the egress policy, its dead-letter queue and managed
    policies for logs and (conditionally) the VPC; the function uses it."""
    resources = template["Resources"]
    function = resources["EgressFunction"]["Properties"]
    if function.get("Role") != {"Fn::GetAtt": ["EgressRole", "Arn"]}:
        problems.append("EgressFunction must run as EgressRole")
    if "Policies" in function:
        problems.append("EgressFunction must not add SAM Policies: its role is EgressRole")
    role = resources["EgressRole"]["Properties"]
    for policy in role.get("Policies", []):
        name = policy_name(policy)
        if name in {"egress", EVENTS_POLICY}:
            continue  # checked with the documents
        if set(policy) == {"Fn::If"}:
            problems.append(f"EgressRole: the only conditional policy must be {EVENTS_POLICY}, not {name!r}")
            continue
        if name != "dead-letter-queue":
            problems.append(f"EgressRole has an unexpected inline policy {name!r}")
            continue
        for statement in policy["PolicyDocument"]["Statement"]:
            if as_set(statement["Action"]) != {"sqs:SendMessage"} or statement.get("Resource") != {
                "Fn::GetAtt": ["EgressDeadLetterQueue", "Arn"]
            }:
                problems.append("EgressRole's dead-letter-queue policy may only send to EgressDeadLetterQueue")
    for arn in role.get("ManagedPolicyArns", []):
        text = json.dumps(arn)
        names = set(re.findall(r"service-role/(AWSLambda\w+)", text))
        if not names or not names <= EGRESS_MANAGED_POLICIES:
            problems.append(f"EgressRole has an unexpected managed policy {text}")
        if "AWSLambdaVPCAccessExecutionRole" in names and "EgressInVpc" not in text:
            problems.append("AWSLambdaVPCAccessExecutionRole must be attached only under the EgressInVpc condition")
    # The role's enrolment condition and the job's selector must be the same tag.
    variables = function["Environment"]["Variables"]
    for variable, parameter in ((TAG_KEY_VARIABLE, TAG_KEY_PARAMETER), (ROUTER_ID_VARIABLE, ROUTER_ID_PARAMETER)):
        if variables.get(variable) != {"Ref": parameter}:
            problems.append(f"EgressFunction's {variable} must be !Ref {parameter}, the value its role is scoped to")
    if variables.get("VPC_ID") != resolved("VpcId"):
        problems.append(f"EgressFunction's VPC_ID must be {json.dumps(resolved('VpcId'))}, what its role is scoped to")


def check_egress_statements(policy, tag_key, router_id, problems):
    enrolment = f"aws:ResourceTag/{tag_key}"
    for statement in policy["Statement"]:
        sid = statement.get("Sid")
        actions = as_set(statement.get("Action"))
        resources = as_set(statement.get("Resource"))
        condition = statement.get("Condition", {})
        if statement.get("Effect") != "Allow" or "NotAction" in statement or "NotResource" in statement:
            problems.append(f"{sid}: only plain Allow statements are expected")
            continue
        unknown = actions - EGRESS_READS - set(EGRESS_WRITES)
        if unknown:
            problems.append(f"{sid}: actions outside the egress job's needs: {sorted(unknown)}")
        reads, writes = actions & EGRESS_READS, actions & set(EGRESS_WRITES)
        if reads and writes:
            problems.append(f"{sid}: reads and writes must not share a statement")
        if reads:
            if not all(a.startswith("ec2:Describe") for a in reads):
                problems.append(f"{sid}: reads must be ec2:Describe* only")
            if resources != {"*"} or condition:
                problems.append(f"{sid}: Describe* supports no resource scoping; expected Resource \"*\" and no condition")
        if not writes:
            continue
        types = {EGRESS_WRITES[a][0] for a in writes}
        if len(types) != 1:
            problems.append(f"{sid}: writes on different resource types must not share a statement")
            continue
        (resource_type,) = types
        if "*" in resources or not all(r.endswith(f":{resource_type}/*") and ":ec2:" in r for r in resources):
            problems.append(f"{sid}: writes must be scoped to {resource_type} ARNs, not {sorted(resources)}")
        if condition.get("StringEquals", {}).get(enrolment) != router_id:
            problems.append(f"{sid}: writes must carry StringEquals {enrolment} = {router_id!r} (the enrolment tag)")
        wants_vpc = all(EGRESS_WRITES[a][1] for a in writes)
        has_vpc = "ec2:Vpc" in condition.get("ArnEquals", {})
        if wants_vpc and not has_vpc:
            problems.append(f"{sid}: writes on route tables must carry an ArnEquals ec2:Vpc condition")
        if has_vpc and not wants_vpc:
            problems.append(f"{sid}: ec2:Vpc is not offered for {sorted(writes)}; the condition would deny every call")
        if writes & {"ec2:CreateTags", "ec2:DeleteTags"}:
            keys = as_set(condition.get("ForAllValues:StringEquals", {}).get("aws:TagKeys"))
            if keys != {CLOCK_TAG}:
                problems.append(f"{sid}: tag writes must be limited (ForAllValues:StringEquals aws:TagKeys) to {CLOCK_TAG}")
            if condition.get("Null", {}).get("aws:TagKeys") != "false":
                # DeleteTags without keys deletes every tag, and ForAllValues
                # holds for an absent key: require the keys to be named.
                problems.append(f"{sid}: tag writes must require named keys (Null aws:TagKeys = \"false\")")
        if "ec2:ModifyInstanceAttribute" in writes:
            if condition.get("StringEquals", {}).get("ec2:Attribute/SourceDestCheck") != "false":
                problems.append(f"{sid}: ModifyInstanceAttribute must be limited to SourceDestCheck = false")
    granted = set().union(*(as_set(s.get("Action")) for s in policy["Statement"]))
    missing = (EGRESS_READS | set(EGRESS_WRITES)) - granted
    if missing:
        problems.append(f"the egress policy lacks actions the job needs: {sorted(missing)}")


def check_egress(template):
    problems = []
    if "EgressRole" not in template["Resources"] or "EgressFunction" not in template["Resources"]:
        return ["template.yaml has no EgressRole / EgressFunction"]
    parameters = template["Parameters"]
    defaults = {name: str(parameters[name]["Default"]) for name in (TAG_KEY_PARAMETER, ROUTER_ID_PARAMETER)}
    from_file = json.loads((ROOT / "policies" / "egress.json").read_text())
    from_template = egress_policy_from_template(template, problems)
    events = change_events_from_template(template, "EgressRole", "EgressFunction", problems)
    if from_template is not None:
        # The template must scope its writes with the parameters, not with
        # their defaults spelled out...
        template_problems = []
        check_egress_statements(
            from_template, placeholder(TAG_KEY_PARAMETER), placeholder(ROUTER_ID_PARAMETER), template_problems
        )
        problems.extend(f"template.yaml: {p}" for p in template_problems)
        # ...and be the file once the parameters take their defaults.
        substituted = replace_strings(from_template, {placeholder(k): v for k, v in defaults.items()})
        if events is not None:
            substituted["Statement"].append(events)
            if substituted != from_file:
                problems.append(differ("policies/egress.json", substituted, from_file))
    check_egress_role(template, problems)
    check_dead_letter_queue_policy(template, "EgressFunction", problems)
    check_egress_statements(
        split_change_events(from_file, "policies/egress.json", problems),
        defaults[TAG_KEY_PARAMETER], defaults[ROUTER_ID_PARAMETER], problems,
    )
    return problems


def replace_refs(value, parameters):
    """Replaces {"Ref": parameter} by <parameter>, recursively."""
    if isinstance(value, dict):
        if set(value) == {"Ref"} and value["Ref"] in parameters:
            return placeholder(value["Ref"])
        return {k: replace_refs(v, parameters) for k, v in value.items()}
    if isinstance(value, list):
        return [replace_refs(v, parameters) for v in value]
    return value


def targets_policy_from_template(template, problems):
    """The role's "targets" policy document, with <TargetGroupArns> standing
    for the parameter."""
    role = template["Resources"]["TargetsRole"]["Properties"]
    named = {p.get("PolicyName"): p.get("PolicyDocument") for p in role.get("Policies", [])}
    document = named.get("targets")
    if document is None:
        problems.append("TargetsRole has no policy named targets")
        return None
    document = unsub(document)
    if isinstance(document, str):
        try:
            document = json.loads(document)
        except json.JSONDecodeError as error:
            problems.append(f"TargetsRole's targets policy is not JSON: {error}")
            return None
    return json.loads(json.dumps(replace_refs(document, {TARGET_GROUPS_PARAMETER})))


def check_targets_statements(policy, in_template, problems):
    """In the template, writes must name exactly the parameter; in the file,
    only example target group ARNs."""
    for statement in policy["Statement"]:
        sid = statement.get("Sid")
        actions = as_set(statement.get("Action"))
        resources = as_set(statement.get("Resource"))
        condition = statement.get("Condition", {})
        if statement.get("Effect") != "Allow" or "NotAction" in statement or "NotResource" in statement:
            problems.append(f"{sid}: only plain Allow statements are expected")
            continue
        unknown = actions - TARGETS_READS - TARGETS_WRITES
        if unknown:
            problems.append(f"{sid}: actions outside the targets job's needs: {sorted(unknown)}")
        reads, writes = actions & TARGETS_READS, actions & TARGETS_WRITES
        if reads and writes:
            problems.append(f"{sid}: reads and writes must not share a statement")
        if reads:
            if not all(a.split(":", 1)[1].startswith("Describe") for a in reads):
                problems.append(f"{sid}: reads must be Describe* only")
            if resources != {"*"} or condition:
                problems.append(f"{sid}: these Describe* support no resource scoping; expected Resource \"*\" and no condition")
        if not writes:
            continue
        if in_template:
            if statement.get("Resource") != placeholder(TARGET_GROUPS_PARAMETER):
                problems.append(
                    f"{sid}: writes must be on !Ref {TARGET_GROUPS_PARAMETER} and nothing else, "
                    f"not {statement.get('Resource')!r}"
                )
        elif not resources or not all(isinstance(r, str) and TARGET_GROUP_EXAMPLE.match(r) for r in resources):
            problems.append(
                f"{sid}: writes must be on whole target group ARNs "
                f"(arn:${{AWS::Partition}}:elasticloadbalancing:${{AWS::Region}}:${{AWS::AccountId}}:targetgroup/<name>/<id>, "
                f"no wildcard), not {sorted(map(str, resources))}"
            )
        keys = [key for operator in condition.values() for key in operator]
        offered = [k for k in keys if not k.startswith(TARGETS_WRITE_CONDITION_KEYS)]
        if offered:
            problems.append(
                f"{sid}: RegisterTargets / DeregisterTargets offer only tag condition keys; "
                f"{sorted(offered)} would deny every call"
            )
    granted = set().union(*(as_set(s.get("Action")) for s in policy["Statement"]))
    missing = (TARGETS_READS | TARGETS_WRITES) - granted
    if missing:
        problems.append(f"the targets policy lacks actions the job needs: {sorted(missing)}")


def check_targets_role(template, problems):
    """The role holds the targets policy, its dead-letter queue and its logs,
    nothing else; the function uses it and reads the same groups."""
    resources = template["Resources"]
    function = resources["TargetsFunction"]["Properties"]
    if function.get("Role") != {"Fn::GetAtt": ["TargetsRole", "Arn"]}:
        problems.append("TargetsFunction must run as TargetsRole")
    if "Policies" in function:
        problems.append("TargetsFunction must not add SAM Policies: its role is TargetsRole")
    role = resources["TargetsRole"]["Properties"]
    for policy in role.get("Policies", []):
        name = policy_name(policy)
        if name in {"targets", EVENTS_POLICY}:
            continue  # checked with the documents
        if set(policy) == {"Fn::If"}:
            problems.append(f"TargetsRole: the only conditional policy must be {EVENTS_POLICY}, not {name!r}")
            continue
        if name != "dead-letter-queue":
            problems.append(f"TargetsRole has an unexpected inline policy {name!r}")
            continue
        for statement in policy["PolicyDocument"]["Statement"]:
            if as_set(statement["Action"]) != {"sqs:SendMessage"} or statement.get("Resource") != {
                "Fn::GetAtt": ["TargetsDeadLetterQueue", "Arn"]
            }:
                problems.append("TargetsRole's dead-letter-queue policy may only send to TargetsDeadLetterQueue")
    for arn in role.get("ManagedPolicyArns", []):
        text = json.dumps(arn)
        names = set(re.findall(r"service-role/(AWSLambda\w+)", text))
        if not names or not names <= TARGETS_MANAGED_POLICIES:
            problems.append(f"TargetsRole has an unexpected managed policy {text}")
    if "PermissionsBoundary" in role:
        problems.append("TargetsRole: a permissions boundary is not expected here")
    # Nothing else may add permissions to the role.
    for name, resource in resources.items():
        if resource.get("Type") in {"AWS::IAM::Policy", "AWS::IAM::ManagedPolicy", "AWS::IAM::RolePolicy"}:
            if "TargetsRole" in json.dumps(resource.get("Properties", {})):
                problems.append(f"{name} adds permissions to TargetsRole; its policies belong in the role")
    # The role's write scope and the job's groups must be the same list.
    variables = function["Environment"]["Variables"]
    expected = {"Fn::Join": [",", {"Ref": TARGET_GROUPS_PARAMETER}]}
    if variables.get(TARGET_GROUPS_VARIABLE) != expected:
        problems.append(
            f"TargetsFunction's {TARGET_GROUPS_VARIABLE} must be !Join [\",\", !Ref {TARGET_GROUPS_PARAMETER}], "
            "the list its role is scoped to"
        )
    if "NLB_SYNC_TARGETGROUPARNS" in variables:
        problems.append("TargetsFunction must not set NLB_SYNC_TARGETGROUPARNS: its groups come from TARGET_GROUP_ARNS")


def check_targets(template):
    problems = []
    if "TargetsRole" not in template["Resources"] or "TargetsFunction" not in template["Resources"]:
        return ["template.yaml has no TargetsRole / TargetsFunction"]
    if template["Parameters"].get(TARGET_GROUPS_PARAMETER, {}).get("Type") != "CommaDelimitedList":
        problems.append(f"template.yaml: {TARGET_GROUPS_PARAMETER} must be a CommaDelimitedList parameter")
    from_file = json.loads((ROOT / "policies" / "targets.json").read_text())
    from_template = targets_policy_from_template(template, problems)
    events = change_events_from_template(template, "TargetsRole", "TargetsFunction", problems)
    if from_template is not None:
        template_problems = []
        check_targets_statements(from_template, True, template_problems)
        problems.extend(f"template.yaml: {p}" for p in template_problems)
        # The file, with its example groups standing for the parameter.
        generalised = json.loads(json.dumps(from_file))
        for statement in generalised["Statement"]:
            if as_set(statement.get("Action")) & TARGETS_WRITES:
                statement["Resource"] = placeholder(TARGET_GROUPS_PARAMETER)
        if events is not None:
            from_template["Statement"].append(events)
            if from_template != generalised:
                problems.append(differ("policies/targets.json", from_template, generalised))
    check_targets_role(template, problems)
    check_dead_letter_queue_policy(template, "TargetsFunction", problems)
    check_targets_statements(split_change_events(from_file, "policies/targets.json", problems), False, problems)
    return problems


# The eip job's whole vocabulary. In the Service Authorization Reference
# (iann0036/iam-dataset, aws/iam_definition.json): DescribeAddresses,
# DescribeInstances, DescribeInstanceStatus and DescribeSpotInstanceRequests
# (the leaving nodes) have no resource type (condition key ec2:Region only);
# AssociateAddress takes the optional resource types elastic-ip (keys
# aws:ResourceTag/${TagKey}, ec2:AllocationId, ec2:Domain, ec2:PublicIpAddress,
# ...), instance (instance keys, no ec2:Vpc) and network-interface (ec2:Vpc,
# ec2:Subnet, ...); DisassociateAddress elastic-ip and network-interface;
# route53:ListResourceRecordSets and route53:ChangeResourceRecordSets require
# hostedzone (arn:${Partition}:route53:::hostedzone/${Id}), the latter with the
# keys route53:ChangeResourceRecordSetsActions, ...NormalizedRecordNames and
# ...RecordTypes; dynamodb:Scan and dynamodb:PutItem require table.
EIP_EC2_READS = {
    "ec2:DescribeAddresses", "ec2:DescribeInstanceStatus", "ec2:DescribeInstances", "ec2:DescribeSpotInstanceRequests",
}
EIP_SCOPED_READS = {"route53:ListResourceRecordSets": "hostedzone", "dynamodb:Scan": "table"}
EIP_WRITES = {
    # action: the resource types it may be granted on
    "ec2:AssociateAddress": {"elastic-ip", "instance", "network-interface"},
    "ec2:DisassociateAddress": {"elastic-ip", "network-interface"},
    "route53:ChangeResourceRecordSets": {"hostedzone"},
    "dynamodb:PutItem": {"table"},
}
EIP_EC2_ARN = "arn:${AWS::Partition}:ec2:${AWS::Region}:${AWS::AccountId}:"
EIP_RESOURCES = {
    # resource type: the one Resource it is granted as
    "elastic-ip": EIP_EC2_ARN + "elastic-ip/*",
    "instance": EIP_EC2_ARN + "instance/*",
    "network-interface": EIP_EC2_ARN + "network-interface/*",
    "hostedzone": "arn:${AWS::Partition}:route53:::hostedzone/${DnsZoneId}",
    "table": "arn:${AWS::Partition}:dynamodb:${AWS::Region}:${AWS::AccountId}:table/${EipBindingTable}",
}
EIP_CONDITIONS = {
    # resource type: the Condition its writes must carry, exactly
    "elastic-ip": {"StringEquals": {"aws:ResourceTag/${EipPoolTagKey}": "${EipPoolTagValue}"}},
    "instance": {},
    "network-interface": {"ArnEquals": {"ec2:Vpc": EIP_EC2_ARN + "vpc/${VpcId}"}},
    "table": {},
}
EIP_RECORD_ACTIONS = {"UPSERT", "DELETE"}
EIP_RECORD_NAMES = {"*.${DnsSuffix}"}
EIP_MANAGED_POLICIES = {"AWSLambdaBasicExecutionRole"}  # its logs; it never runs in the VPC
# The binding table the role is scoped to and the function writes: the stack's
# own, or the BindingTableName parameter.
EIP_TABLE = {"Fn::If": ["EipCreatesTable", {"Ref": "BindingTable"}, {"Ref": "BindingTableName"}]}


def eip_resource_type(resource):
    for kind, arn in EIP_RESOURCES.items():
        if resource == arn:
            return kind
    return None


def check_eip_record_condition(sid, condition, problems):
    """ChangeResourceRecordSets: A records only, UPSERT and DELETE only, names
    under the suffix. A batch always holds at least one change, so the
    ForAllValues keys are never absent."""
    expected_operators = {"ForAllValues:StringEquals", "ForAllValues:StringLike"}
    if set(condition) != expected_operators:
        problems.append(f"{sid}: record changes must be conditioned by {sorted(expected_operators)} only, not {sorted(condition)}")
        return
    equals, like = condition["ForAllValues:StringEquals"], condition["ForAllValues:StringLike"]
    if set(equals) != {"route53:ChangeResourceRecordSetsActions", "route53:ChangeResourceRecordSetsRecordTypes"}:
        problems.append(f"{sid}: ForAllValues:StringEquals must name the record actions and types, not {sorted(equals)}")
        return
    actions = as_set(equals["route53:ChangeResourceRecordSetsActions"])
    if not actions or not actions <= EIP_RECORD_ACTIONS:
        problems.append(f"{sid}: record actions must be among {sorted(EIP_RECORD_ACTIONS)}, not {sorted(actions)}")
    if as_set(equals["route53:ChangeResourceRecordSetsRecordTypes"]) != {"A"}:
        problems.append(f"{sid}: record types must be A only")
    if set(like) != {"route53:ChangeResourceRecordSetsNormalizedRecordNames"} or as_set(
        like["route53:ChangeResourceRecordSetsNormalizedRecordNames"]
    ) != EIP_RECORD_NAMES:
        problems.append(f"{sid}: record names must be limited (ForAllValues:StringLike) to {sorted(EIP_RECORD_NAMES)}")


def check_eip_statements(policy, problems):
    for statement in policy["Statement"]:
        sid = statement.get("Sid")
        actions = as_set(statement.get("Action"))
        resources = as_set(statement.get("Resource"))
        condition = statement.get("Condition", {})
        if statement.get("Effect") != "Allow" or "NotAction" in statement or "NotResource" in statement:
            problems.append(f"{sid}: only plain Allow statements are expected")
            continue
        unknown = actions - EIP_EC2_READS - set(EIP_SCOPED_READS) - set(EIP_WRITES)
        if unknown:
            problems.append(f"{sid}: actions outside the eip job's needs: {sorted(unknown)}")
        ec2_reads, scoped_reads = actions & EIP_EC2_READS, actions & set(EIP_SCOPED_READS)
        writes = actions & set(EIP_WRITES)
        if sum(map(bool, (ec2_reads, scoped_reads, writes))) > 1:
            problems.append(f"{sid}: EC2 reads, scoped reads and writes must not share a statement")
            continue
        if not all(a.split(":", 1)[1].startswith(("Describe", "List", "Scan")) for a in ec2_reads | scoped_reads):
            problems.append(f"{sid}: reads must be Describe*, List* or Scan only")
        if ec2_reads and (resources != {"*"} or condition):
            problems.append(f"{sid}: these Describe* support no resource scoping; expected Resource \"*\" and no condition")
        if scoped_reads:
            kinds = {EIP_SCOPED_READS[a] for a in scoped_reads}
            if len(kinds) != 1 or resources != {EIP_RESOURCES[next(iter(kinds))]} or condition:
                problems.append(
                    f"{sid}: ListResourceRecordSets must be on the hosted zone, Scan on the table, "
                    f"each alone and without condition; not {sorted(resources)}"
                )
        if not writes:
            continue
        kinds = {eip_resource_type(r) for r in resources}
        if None in kinds or len(kinds) != 1:
            problems.append(
                f"{sid}: writes must be on exactly one of {sorted(EIP_RESOURCES.values())}, not {sorted(resources)}"
            )
            continue
        (kind,) = kinds
        refused = sorted(a for a in writes if kind not in EIP_WRITES[a])
        if refused:
            problems.append(f"{sid}: {refused} may not be granted on {kind}")
        if kind == "hostedzone":
            check_eip_record_condition(sid, condition, problems)
        elif condition != EIP_CONDITIONS[kind]:
            hint = {
                "elastic-ip": "writes on Elastic IPs must carry exactly the pool-tag condition",
                "instance": "EC2 offers no ec2:Vpc for AssociateAddress on instance; a condition would deny every call",
                "network-interface": "writes on network interfaces must carry exactly the ec2:Vpc condition",
                "table": "writes on the table are scoped by its ARN; no condition expected",
            }[kind]
            problems.append(f"{sid}: {hint}: expected {json.dumps(EIP_CONDITIONS[kind])}, not {json.dumps(condition)}")
    granted = set().union(*(as_set(s.get("Action")) for s in policy["Statement"]))
    missing = (EIP_EC2_READS | set(EIP_SCOPED_READS) | set(EIP_WRITES)) - granted
    if missing:
        problems.append(f"the eip policy lacks actions the job needs: {sorted(missing)}")
    # Each write on each type it needs: a missing grant would deny the call.
    pairs = {
        (a, eip_resource_type(r))
        for s in policy["Statement"]
        for a in as_set(s.get("Action")) & set(EIP_WRITES)
        for r in as_set(s.get("Resource"))
    }
    absent = sorted(f"{a} on {k}" for a, kinds in EIP_WRITES.items() for k in kinds if (a, k) not in pairs)
    if absent:
        problems.append(f"the eip policy lacks grants the job needs: {absent}")


def eip_policies_from_template(template, problems):
    """The role's "eip" and "eip-dns" documents, parsed; None where absent or
    malformed."""
    role = template["Resources"]["EipRole"]["Properties"]
    documents = {}
    for policy in role.get("Policies", []):
        if policy_name(policy) == EVENTS_POLICY:
            continue  # change_events_from_template
        conditional = set(policy) == {"Fn::If"}
        if conditional:
            condition, then, otherwise = policy["Fn::If"]
            if then.get("PolicyName") != "eip-dns" or condition != "EipHasDns" or otherwise != {"Ref": "AWS::NoValue"}:
                problems.append(
                    f"EipRole: its conditional policies must be eip-dns (under EipHasDns, else nothing) and "
                    f"{EVENTS_POLICY} only"
                )
                continue
            policy = then
        name = policy.get("PolicyName")
        if name not in {"eip", "eip-dns"}:
            continue
        if (name == "eip-dns") != conditional:
            problems.append(f"EipRole's {name} policy must be attached " + (
                "only under the EipHasDns condition" if name == "eip-dns" else "unconditionally"))
            continue
        expected = {} if name == "eip-dns" else {"EipBindingTable": EIP_TABLE, **resolved_variables("VpcId")}
        text = sub_document(policy.get("PolicyDocument"), expected, f"EipRole's {name} policy", problems)
        if not isinstance(text, str):
            form = "a !Sub'ed JSON document" if name == "eip-dns" else "!Sub [JSON document, {EipBindingTable: ..., VpcIdValue: ...}]"
            problems.append(f"EipRole's {name} policy must be {form}")
            continue
        try:
            documents[name] = json.loads(text)
        except json.JSONDecodeError as error:
            problems.append(f"EipRole's {name} policy is not JSON: {error}")
    for name in ("eip", "eip-dns"):
        if name not in documents:
            problems.append(f"EipRole has no readable policy named {name}")
    return documents


def check_eip_role(template, documents, problems):
    """The role holds the eip policies, its dead-letter queue and its logs,
    nothing else; the function uses it and reads the same table, zone and
    suffix."""
    resources = template["Resources"]
    function = resources["EipFunction"]["Properties"]
    if function.get("Role") != {"Fn::GetAtt": ["EipRole", "Arn"]}:
        problems.append("EipFunction must run as EipRole")
    if "Policies" in function:
        problems.append("EipFunction must not add SAM Policies: its role is EipRole")
    role = resources["EipRole"]["Properties"]
    for policy in role.get("Policies", []):
        if set(policy) == {"Fn::If"}:
            continue  # eip-dns and change-events, checked with the documents
        name = policy.get("PolicyName")
        if name in {"eip", "eip-dns", EVENTS_POLICY}:
            continue  # checked with the documents
        if name != "dead-letter-queue":
            problems.append(f"EipRole has an unexpected inline policy {name!r}")
            continue
        for statement in policy["PolicyDocument"]["Statement"]:
            if as_set(statement["Action"]) != {"sqs:SendMessage"} or statement.get("Resource") != {
                "Fn::GetAtt": ["EipDeadLetterQueue", "Arn"]
            }:
                problems.append("EipRole's dead-letter-queue policy may only send to EipDeadLetterQueue")
    for arn in role.get("ManagedPolicyArns", []):
        text = json.dumps(arn)
        names = set(re.findall(r"service-role/(AWSLambda\w+)", text))
        if not names or not names <= EIP_MANAGED_POLICIES:
            problems.append(f"EipRole has an unexpected managed policy {text}")
    if "PermissionsBoundary" in role:
        problems.append("EipRole: a permissions boundary is not expected here")
    for name, resource in resources.items():
        if resource.get("Type") in {"AWS::IAM::Policy", "AWS::IAM::ManagedPolicy", "AWS::IAM::RolePolicy"}:
            if "EipRole" in json.dumps(resource.get("Properties", {})):
                problems.append(f"{name} adds permissions to EipRole; its policies belong in the role")
    # Without a zone the role must hold no Route 53 permission at all.
    for name, document in documents.items():
        services = {a.split(":", 1)[0] for s in document["Statement"] for a in as_set(s.get("Action"))}
        if name == "eip" and "route53" in services:
            problems.append("EipRole's eip policy must not grant Route 53: that belongs in eip-dns, under EipHasDns")
        if name == "eip-dns" and services != {"route53"}:
            problems.append(f"EipRole's eip-dns policy must grant Route 53 only, not {sorted(services)}")
    # The role's scope and the job's settings must be the same table, zone and suffix.
    variables = function["Environment"]["Variables"]
    expected = {
        "BINDING_TABLE": EIP_TABLE,
        "DNS_ZONE_ID": {"Fn::If": ["EipHasDns", {"Ref": "DnsZoneId"}, {"Ref": "AWS::NoValue"}]},
        "DNS_SUFFIX": {"Fn::If": ["EipHasDns", {"Ref": "DnsSuffix"}, {"Ref": "AWS::NoValue"}]},
        "VPC_ID": resolved("VpcId"),
    }
    for variable, value in expected.items():
        if variables.get(variable) != value:
            problems.append(f"EipFunction's {variable} must be {json.dumps(value)}, what its role is scoped to")


def check_eip(template):
    problems = []
    if "EipRole" not in template["Resources"] or "EipFunction" not in template["Resources"]:
        return ["template.yaml has no EipRole / EipFunction"]
    from_file = json.loads((ROOT / "policies" / "eip.json").read_text())
    documents = eip_policies_from_template(template, problems)
    events = change_events_from_template(template, "EipRole", "EipFunction", problems)
    check_eip_role(template, documents, problems)
    check_dead_letter_queue_policy(template, "EipFunction", problems)
    if "eip" in documents and "eip-dns" in documents:
        from_template = {
            "Version": documents["eip"].get("Version"),
            "Statement": documents["eip"]["Statement"] + documents["eip-dns"]["Statement"],
        }
        if documents["eip-dns"].get("Version") != from_template["Version"]:
            problems.append("EipRole's eip and eip-dns policies must have the same Version")
        template_problems = []
        check_eip_statements(from_template, template_problems)
        problems.extend(f"template.yaml: {p}" for p in template_problems)
        if events is not None:
            from_template["Statement"].append(events)
            if from_template != from_file:
                problems.append(differ("policies/eip.json", from_template, from_file))
    check_eip_statements(split_change_events(from_file, "policies/eip.json", problems), problems)
    return problems


def main() -> int:
    template, errors = decode(str(ROOT / "template.yaml"))
    if errors:
        print("\n".join(str(e) for e in errors))
        return 1
    failed = False
    for job, check, verdict in (
        ("routes", check_routes, "template.yaml and policies/kube-rtsync.json agree; route writes are scoped to the "
                                 "VPC and denied on the tables tagged for ClusterName and on SourceRouteTableId; "
                                 "only Auto Scaling and TopicPublisherArns may publish to the topic, over TLS; "
                                 "only CloudWatch to the alarm topic; only the function's rules to its "
                                 "dead-letter queue; change events only on the EventBusName bus, none with none"),
        ("egress", check_egress, "template.yaml and policies/egress.json agree; reads are Describe*, every write "
                                 "is scoped to enrolled resources; only the function's rules may send to its "
                                 "dead-letter queue; change events only on the EventBusName bus"),
        ("targets", check_targets, "template.yaml and policies/targets.json agree; reads are Describe*, writes are "
                                   "on the TargetGroupArns target groups only; only the function's rules may "
                                   "send to its dead-letter queue; change events only on the EventBusName bus"),
        ("eip", check_eip, "template.yaml and policies/eip.json agree; reads are Describe*, List* and Scan, writes "
                           "are on pool Elastic IPs, the VPC's interfaces, instances, the zone's A records and "
                           "the binding table only; only the function's rules may send to its dead-letter "
                           "queue; change events only on the EventBusName bus"),
    ):
        problems = check(template)
        for p in problems:
            print(f"check_policy: {job}: {p}", file=sys.stderr)
        if problems:
            failed = True
        else:
            print(f"check_policy: {job}: {verdict}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
