#!/usr/bin/env python3
"""Checks that template.yaml grants each function exactly the statements of
its policy file, and that every write those statements allow is scoped.

routes: the function's SAM Policies are the statements of
policies/kube-rtsync.json, and no route-writing statement is unscoped.

egress: the "egress" policy of EgressRole is policies/egress.json once the
EgressTagKey and EgressRouterId parameters are replaced by their defaults;
its reads are Describe* only; every write names a resource type (never "*")
and carries the enrolment-tag condition; route writes stay in the VPC; tag
writes touch only the failback-clock tag; the source/destination fix is the
only attribute change; and the role holds nothing else but its logs, its
dead-letter queue and (in a VPC) its network interfaces.

targets: the "targets" policy of TargetsRole is policies/targets.json once
the file's example target group ARNs are replaced by the TargetGroupArns
parameter; its reads are Describe* only, on "*"; its writes (RegisterTargets,
DeregisterTargets) are on the TargetGroupArns parameter and nothing else, and
the file's examples are target group ARNs without wildcards; the function
reads the same list (TARGET_GROUP_ARNS); and the role holds nothing else but
its logs and its dead-letter queue.

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

# The egress job's whole vocabulary: anything else in its policy is a finding.
EGRESS_READS = {
    "ec2:DescribeInstanceStatus",
    "ec2:DescribeInstances",
    "ec2:DescribeNatGateways",
    "ec2:DescribeRouteTables",
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
# (iann0036/iam-dataset, aws/iam_definition.json) the three reads have no
# resource type and no condition key, so "*" is the only Resource they take;
# RegisterTargets and DeregisterTargets require the targetgroup resource type
# (arn:${Partition}:elasticloadbalancing:${Region}:${Account}:targetgroup/
# ${TargetGroupName}/${TargetGroupId}) and offer only the tag keys below.
TARGETS_READS = {
    "ec2:DescribeInstances",
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


def check_routes(template):
    policies = template["Resources"]["Function"]["Properties"]["Policies"]
    from_template = json.loads(json.dumps(unsub(policies[0])))
    from_file = json.loads((ROOT / "policies" / "kube-rtsync.json").read_text())
    problems = []
    if len(policies) != 1:
        problems.append(f"the function has {len(policies)} policies; expected exactly the one of policies/")
    if from_template != from_file:
        problems.append(differ("policies/kube-rtsync.json", from_template, from_file))
    for statement in from_file["Statement"]:
        actions = as_set(statement["Action"])
        if actions & ROUTES_WRITES:
            resource = statement.get("Resource")
            if resource == "*" or not str(resource).endswith(":route-table/*"):
                problems.append(f"{statement.get('Sid')}: route writes must be scoped to route tables, not {resource!r}")
            if "ec2:Vpc" not in json.dumps(statement.get("Condition", {})):
                problems.append(f"{statement.get('Sid')}: route writes must carry an ec2:Vpc condition")
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
    text = unsub(document)
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
        name = policy.get("PolicyName")
        if name == "egress":
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
        if substituted != from_file:
            problems.append(differ("policies/egress.json", substituted, from_file))
    check_egress_role(template, problems)
    check_egress_statements(from_file, defaults[TAG_KEY_PARAMETER], defaults[ROUTER_ID_PARAMETER], problems)
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
        name = policy.get("PolicyName")
        if name == "targets":
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
    if from_template is not None:
        template_problems = []
        check_targets_statements(from_template, True, template_problems)
        problems.extend(f"template.yaml: {p}" for p in template_problems)
        # The file, with its example groups standing for the parameter.
        generalised = json.loads(json.dumps(from_file))
        for statement in generalised["Statement"]:
            if as_set(statement.get("Action")) & TARGETS_WRITES:
                statement["Resource"] = placeholder(TARGET_GROUPS_PARAMETER)
        if from_template != generalised:
            problems.append(differ("policies/targets.json", from_template, generalised))
    check_targets_role(template, problems)
    check_targets_statements(from_file, False, problems)
    return problems


def main() -> int:
    template, errors = decode(str(ROOT / "template.yaml"))
    if errors:
        print("\n".join(str(e) for e in errors))
        return 1
    failed = False
    for job, check, verdict in (
        ("routes", check_routes, "template.yaml and policies/kube-rtsync.json agree; route writes are scoped to the VPC"),
        ("egress", check_egress, "template.yaml and policies/egress.json agree; reads are Describe*, every write "
                                 "is scoped to enrolled resources"),
        ("targets", check_targets, "template.yaml and policies/targets.json agree; reads are Describe*, writes are "
                                   "on the TargetGroupArns target groups only"),
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
