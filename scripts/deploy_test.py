#!/usr/bin/env python3
"""The emulator tier of the deployment: template.yaml deployed by CloudFormation
(moto's, on a free loopback port), read back and checked. `make deploy-test`
runs it (and `make test` runs that); it needs the project's two venvs only
(`make venv sam-tools`) and never contacts AWS. Run it with .venv/bin/python.

moto's CloudFormation does not expand `Transform: AWS::Serverless-2016-10-31`
(it answers CREATE_COMPLETE with no resources), so each deployment is what
`sam deploy` would have CloudFormation deploy: the template expanded offline
by the SAM translator (scripts/sam_expand.py, in .venv-sam) with that stack's
parameter values, the code where `sam package` would have uploaded it. The
code is a placeholder zip (a `bootstrap` that exits 1): nothing is invoked,
and reading the resources back needs no real binary; its SHA-256 tells that
each function's code came from the object uploaded for it.

Deployments, each checked in full:
  A  stack kube-rtsync, the defaults (routes only, change events on the
     default bus), with a sample VpcId, ClusterName and SourceRouteTableId (a
     VPC and a table made in moto);
  B  the same stack updated with EnableEgress, EnableTargets (a sample
     TargetGroupArns) and EnableEip (with DnsZoneId): four functions; change
     events on another bus of the account, given by its name (EventBusName
     platform/kube-rtsync), and EgressRegionalFallback true;
  C  stack kube-rtsync-ssm from the release template (scripts/release_template.py)
     with its code in <CodeBucketPrefix>-us-east-1, all four jobs, a
     FunctionNamePrefix, VpcId, ClusterName and SourceRouteTableId from SSM
     parameters (VpcId empty), and change events on another account's bus,
     named by its ARN;
  D  stack kube-rtsync-quiet, all four jobs with EventBusName none: no
     change-events policy on any role.

Per function: its name, handler, runtime, memory, timeout, code, environment
(the per-account values, EVENT_BUS_NAME, the job's own), reserved
concurrency; its own role: trust policy, inline policies holding exactly its
policy file's statements (placeholders filled in with the stack's values; the
change-events statement on the stack's bus, the ARN as given, and no
change-events policy at all with EventBusName none) plus the
dead-letter-queue policy; its rules (schedule, state change, and for egress,
targets and eip the Spot interruption warning: state, schedule or pattern,
target, retry policy, dead-letter queue), its invoke permissions, its SNS
subscription, its event invoke config, its dead-letter queue and queue policy
(for all its rules), its log group and its six alarms (actions and
dimensions).

What moto cannot do, and how it is checked instead (the test says so as it
goes; nothing is reported as made by CloudFormation that was not):
- resource types its CloudFormation skips (with a warning, still
  CREATE_COMPLETE): AWS::CloudWatch::Alarm, AWS::SNS::Subscription,
  AWS::SNS::TopicPolicy, AWS::SQS::QueuePolicy, AWS::Lambda::EventInvokeConfig.
  The test resolves their properties from the expanded template against the
  deployed stack (Ref and GetAtt of the real resources) and applies them
  through the services' own APIs (PutMetricAlarm, Subscribe, ...), then reads
  them back: the wiring is checked, CloudFormation's handling of the type is not;
- properties its CloudFormation ignores: AWS::Lambda::Function Architectures
  and LoggingConfig, AWS::IAM::Role ManagedPolicyArns: checked in the
  expanded template, resolved with the stack's values;
- an AWS::IAM::Role whose Policies list holds an Fn::If resolving to
  AWS::NoValue fails its create (HTTP 500, TypeError in iam/models.py): the
  test resolves that list's Fn::If items for the deployment's values before
  deploying (the template keeps its !If, which CloudFormation handles);
- a stack update never changes the Policies of a role it keeps (moto's
  update sets a role's description and session duration only): after an
  update the test puts the template's inline policies, resolved against the
  stack, through IAM where they differ (B: FunctionRole's change-events on the
  new bus), and says which;
- IAM keeps an inline policy that CloudFormation gave as an object as
  Python's repr of it (read back with ast.literal_eval);
- template Rules and parameter constraints are not evaluated: the test
  evaluates them for each deployment's values, as CloudFormation would;
- dynamic references ({{resolve:ssm:...}}) are not resolved: the test
  checks that the reference itself reached every place (C), then resolves it
  from moto's SSM in what it reads back and checks the result as for A and B.
"""
import base64
import copy
import hashlib
import io
import json
import os
import re
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "scripts"))
from check_policy import EVENTS_POLICY, NO_EVENT_BUS, replace_strings  # noqa: E402

SAM_PYTHON = ROOT / ".venv-sam" / "bin" / "python"
MOTO_SERVER = Path(sys.executable).parent / "moto_server"
REGION = "us-east-1"
BUCKET = "kube-rtsync-deploy-test"  # what `sam package` uploads to (A, B)
CODE_KEY = "kube-rtsync/placeholder.zip"
RELEASE_PREFIX = "kube-rtsync-deploy-test-release"  # CodeBucketPrefix (C)
BASIC_EXECUTION = "arn:aws:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole"
NO_VALUE = object()
DYNAMIC = re.compile(r"\{\{resolve:ssm:([A-Za-z0-9_./-]+)(?::([0-9]+))?\}\}")
STATE_PATTERN = {
    "source": ["aws.ec2"],
    "detail-type": ["EC2 Instance State-change Notification"],
    "detail": {"state": ["running", "stopping", "stopped", "shutting-down", "terminated"]},
}
SPOT_PATTERN = {"source": ["aws.ec2"], "detail-type": ["EC2 Spot Instance Interruption Warning"]}
MOTO_SKIPS = {
    "AWS::CloudWatch::Alarm", "AWS::SNS::Subscription", "AWS::SNS::TopicPolicy", "AWS::SQS::QueuePolicy",
    "AWS::Lambda::EventInvokeConfig",
}


class Job:
    def __init__(self, name, prefix, handler, suffix, timeout, policy_file, policies, subscription, schedule,
                 state_rule_on, alarms, spot_rule=False):
        self.name, self.handler, self.suffix, self.timeout = name, handler, suffix, timeout
        self.function = prefix + "Function"
        self.role = (prefix or "Function") + "Role"
        self.queue = prefix + "DeadLetterQueue"
        self.log_group = prefix + "LogGroup"
        self.policy_file, self.policies = policy_file, policies
        self.subscription = self.function + "AutoScalingNotifications" if subscription else None
        self.invoke_config = self.function + "EventInvokeConfig"
        # Each rule: its schedule, or (pattern, always on, what it is); the
        # state-change rule of routes is on only with EnableInstanceStateRule.
        self.rules = {
            self.function + "Schedule": schedule,
            self.function + "InstanceStateChange": (STATE_PATTERN, state_rule_on, "EC2 state changes"),
        }
        if spot_rule:
            self.rules[self.function + "SpotInterruptionWarning"] = (SPOT_PATTERN, True, "Spot interruption warnings")
        self.alarms = [prefix + a for a in alarms]


JOBS = [
    Job("routes", "", "bootstrap", "kube-rtsync", 300, "kube-rtsync.json",
        ["kube-rtsync", "deny-cluster-tables", "deny-source-table"], True, "rate(5 minutes)", False,
        ["HeartbeatAlarm", "DeadLetterAlarm", "ErrorsAlarm", "TablesFailedAlarm", "ChangesWithheldAlarm",
         "WritesFailedAlarm"]),
    Job("egress", "Egress", "egress", "egress", 60, "egress.json", ["egress"], False, "rate(1 minute)", True,
        ["HeartbeatAlarm", "DeadLetterAlarm", "ErrorsAlarm", "NoHealthyNatAlarm", "WritesFailedAlarm",
         "TablesLeftAloneAlarm"], spot_rule=True),
    Job("targets", "Targets", "targets", "targets", 60, "targets.json", ["targets"], True, "rate(5 minutes)", True,
        ["HeartbeatAlarm", "DeadLetterAlarm", "ErrorsAlarm", "GroupsFailedAlarm", "ChangesWithheldAlarm",
         "WritesFailedAlarm"], spot_rule=True),
    Job("eip", "Eip", "eip", "eip", 60, "eip.json", ["eip", "eip-dns"], True, "rate(5 minutes)", True,
        ["HeartbeatAlarm", "DeadLetterAlarm", "ErrorsAlarm", "PoolExhaustedAlarm", "WritesFailedAlarm",
         "ChangesWithheldAlarm"], spot_rule=True),
]


class Report:
    def __init__(self):
        self.failures, self.gaps = [], []
        self.section = ""

    def start(self, title):
        self.section = title
        print(f"\n== {title}")

    def check(self, ok, what, detail=""):
        print(f"  {'ok  ' if ok else 'FAIL'} {what}" + ("" if ok or not detail else f"\n       {detail}"))
        if not ok:
            self.failures.append(f"{self.section}: {what}" + (f": {detail}" if detail else ""))
        return ok

    def equal(self, actual, expected, what):
        return self.check(actual == expected, what, f"expected {short(expected)}, got {short(actual)}")

    def gap(self, text, detail=None):
        """A gap of moto's, and how it is checked instead: said once."""
        if text not in self.gaps:
            print(f"  moto {text}")
            self.gaps.append(text)
        if detail:
            print(f"       {detail}")


def exact(statement):
    """A statement as written, Sid and all; only a list of actions is sorted."""
    statement = dict(statement)
    if isinstance(statement.get("Action"), list):
        statement["Action"] = sorted(statement["Action"])
    return statement


def short(value, limit=600):
    text = json.dumps(value, sort_keys=True, default=str) if not isinstance(value, str) else value
    return text if len(text) <= limit else text[:limit] + "..."


# ---- the template's intrinsics, for this test's own use -----------------

class Resolver:
    """CloudFormation's intrinsic functions over a template, for given
    parameter values and (once deployed) the stack's physical ids."""

    def __init__(self, template, values, pseudo, physical=None, attribute=None):
        self.template, self.pseudo = template, pseudo
        self.physical, self.attribute = physical or {}, attribute
        self.values = {}
        for name, spec in template.get("Parameters", {}).items():
            value = values.get(name, spec.get("Default"))
            if value is None:
                raise SystemExit(f"deploy_test: parameter {name} has no value and no default")
            value = str(value)
            self.values[name] = value.split(",") if spec.get("Type") == "CommaDelimitedList" else value
        unknown = set(values) - set(self.values)
        if unknown:
            raise SystemExit(f"deploy_test: no such parameters: {sorted(unknown)}")
        self.conditions = {}

    def condition(self, name):
        if name not in self.conditions:
            self.conditions[name] = bool(self.value(self.template["Conditions"][name]))
        return self.conditions[name]

    def holds(self, resource):
        return "Condition" not in resource or self.condition(resource["Condition"])

    def ref(self, name):
        if name == "AWS::NoValue":
            return NO_VALUE
        for source in (self.pseudo, self.values, self.physical):
            if name in source:
                return source[name]
        raise KeyError(f"Ref {name}: no such parameter, pseudo parameter or deployed resource")

    def sub(self, argument):
        text, variables = (argument, {}) if isinstance(argument, str) else argument
        variables = {k: self.value(v) for k, v in variables.items()}

        def replace(match):
            name = match.group(1)
            if name.startswith("!"):
                return "${" + name[1:] + "}"
            if name in variables:
                value = variables[name]
            elif "." in name and not name.startswith("AWS::"):
                value = self.attribute(*name.split(".", 1))
            else:
                value = self.ref(name)
            return ",".join(value) if isinstance(value, list) else str(value)

        return re.sub(r"\$\{([^}]+)\}", replace, text)

    def value(self, value):
        if isinstance(value, list):
            return [v for v in (self.value(item) for item in value) if v is not NO_VALUE]
        if not isinstance(value, dict):
            return value
        if len(value) == 1:
            ((key, argument),) = value.items()
            if key == "Ref":
                return self.ref(argument)
            if key == "Condition":
                return self.condition(argument)
            if key == "Fn::If":
                condition, then, otherwise = argument
                return self.value(then if self.condition(condition) else otherwise)
            if key == "Fn::Equals":
                left, right = (self.value(v) for v in argument)
                return str(left) == str(right)
            if key == "Fn::Not":
                return not self.value(argument[0])
            if key == "Fn::And":
                return all(self.value(v) for v in argument)
            if key == "Fn::Or":
                return any(self.value(v) for v in argument)
            if key == "Fn::Contains":
                items, item = (self.value(v) for v in argument)
                return item in items
            if key == "Fn::Join":
                separator, items = argument
                return separator.join(str(v) for v in self.value(items))
            if key == "Fn::Split":
                separator, text = argument
                return str(self.value(text)).split(separator)
            if key == "Fn::Select":
                index, items = argument
                return self.value(items)[int(self.value(index))]
            if key == "Fn::GetAtt":
                logical, name = argument if isinstance(argument, list) else argument.split(".", 1)
                return self.attribute(logical, name)
            if key == "Fn::Sub":
                return self.sub(argument)
        result = {}
        for key, item in value.items():
            item = self.value(item)
            if item is not NO_VALUE:
                result[key] = item
        return result


def parameter_problems(template, resolver):
    """What CloudFormation would refuse in these values: AllowedValues,
    AllowedPattern (per item of a list), MinValue/MaxValue, and the Rules."""
    problems = []
    for name, spec in template.get("Parameters", {}).items():
        value = resolver.values[name]
        items = value if isinstance(value, list) else [value]
        for item in items:
            if "AllowedValues" in spec and item not in [str(v) for v in spec["AllowedValues"]]:
                problems.append(f"{name}={item!r} is not among AllowedValues")
            if "AllowedPattern" in spec and re.fullmatch(spec["AllowedPattern"], item) is None:
                problems.append(f"{name}={item!r} does not match AllowedPattern")
            if spec.get("Type") == "Number":
                number = float(item)
                if "MinValue" in spec and number < float(spec["MinValue"]):
                    problems.append(f"{name}={item} is below MinValue")
                if "MaxValue" in spec and number > float(spec["MaxValue"]):
                    problems.append(f"{name}={item} is above MaxValue")
    for name, rule in template.get("Rules", {}).items():
        if "RuleCondition" in rule and not resolver.value(rule["RuleCondition"]):
            continue
        for assertion in rule.get("Assertions", []):
            if not resolver.value(assertion["Assert"]):
                problems.append(f"rule {name}: {assertion.get('AssertDescription')}")
    return problems


def fill_iam_holes(template, resolver):
    """moto's TypeError on an IAM role whose Policies list holds an Fn::If
    that resolves to AWS::NoValue: the list's Fn::If items are resolved here,
    for this deployment's values (nothing else changes). ManagedPolicyArns
    has such an item too (EgressRole), but moto ignores that property."""
    template = copy.deepcopy(template)
    changed = []
    for name, resource in template["Resources"].items():
        if resource.get("Type") != "AWS::IAM::Role":
            continue
        for key in ("Policies",):
            items = resource.get("Properties", {}).get(key)
            if not isinstance(items, list):
                continue
            kept = []
            for item in items:
                if isinstance(item, dict) and set(item) == {"Fn::If"}:
                    condition, then, otherwise = item["Fn::If"]
                    item = then if resolver.condition(condition) else otherwise
                    changed.append(f"{name}.{key}: !If [{condition}, ...] -> "
                                   + ("AWS::NoValue (dropped)" if item == {"Ref": "AWS::NoValue"} else "its value"))
                    if item == {"Ref": "AWS::NoValue"}:
                        continue
                kept.append(item)
            resource["Properties"][key] = kept
    return template, changed


# ---- the emulator -------------------------------------------------------

def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Emulator:
    def __init__(self, log_path):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = log_path
        self.process = None

    def __enter__(self):
        log = open(self.log_path, "w")
        self.process = subprocess.Popen(
            [str(MOTO_SERVER), "-H", "127.0.0.1", "-p", str(self.port)], stdout=log, stderr=subprocess.STDOUT
        )
        deadline = time.monotonic() + 30
        while True:
            try:
                urllib.request.urlopen(self.url + "/moto-api/", timeout=1).read()
                return self
            except OSError:
                if self.process.poll() is not None or time.monotonic() > deadline:
                    self.__exit__(None, None, None)
                    raise SystemExit(f"deploy_test: moto_server did not start (log: {self.log_path})")
                time.sleep(0.1)

    def __exit__(self, *exc):
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def warnings(self):
        text = Path(self.log_path).read_text(errors="replace")
        return sorted(set(re.findall(r"Tried to parse (\S+) but it's not supported by moto's CloudFormation implementation", text)))


class Aws:
    def __init__(self, url):
        import boto3
        from botocore.config import Config

        session = boto3.session.Session(aws_access_key_id="test", aws_secret_access_key="test", region_name=REGION)
        config = Config(retries={"max_attempts": 1})
        for name in ("cloudformation", "s3", "ec2", "iam", "lambda", "events", "sqs", "sns", "cloudwatch", "logs",
                     "dynamodb", "ssm", "sts"):
            setattr(self, name.replace("lambda", "lambda_"), session.client(name, endpoint_url=url, config=config))
        self.account = self.sts.get_caller_identity()["Account"]


def as_document(document, report):
    """A policy document as IAM returns it: parsed by boto3, else JSON text;
    moto keeps a document that CloudFormation gave as an object as Python's
    repr of it, which is read as such (and reported)."""
    if not isinstance(document, str):
        return document
    import ast
    import urllib.parse

    text = urllib.parse.unquote(document)
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        report.gap("IAM keeps an inline policy that CloudFormation gave as an object (not a JSON string) as "
                   "Python's repr of the dict: read back with ast.literal_eval")
        return ast.literal_eval(text)


def placeholder_zip(label):
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        info = zipfile.ZipInfo("bootstrap", date_time=(2026, 1, 1, 0, 0, 0))
        info.external_attr = 0o755 << 16
        archive.writestr(info, f"#!/bin/sh\n# kube-rtsync deploy test placeholder ({label}), never invoked\nexit 1\n")
    data = buffer.getvalue()
    return data, base64.b64encode(hashlib.sha256(data).digest()).decode()


def expand_for_sam_deploy(values, out):
    """What CloudFormation's transform gives `sam deploy` for these values."""
    command = [str(SAM_PYTHON), str(ROOT / "scripts" / "sam_expand.py"), "--code-uri", f"s3://{BUCKET}/{CODE_KEY}",
               "--output", str(out)] + [f"--parameter={k}={v}" for k, v in values.items()]
    subprocess.run(command, check=True)
    return json.loads(Path(out).read_text())


# ---- one deployment -----------------------------------------------------

class Deployment:
    def __init__(self, aws, report, emulator, stack, template, values, code_sha, update=False, dynamic=None):
        self.aws, self.report, self.emulator = aws, report, emulator
        self.stack, self.template, self.values, self.code_sha = stack, template, values, code_sha
        self.update, self.dynamic = update, dynamic or {}
        self.pseudo = {"AWS::Region": REGION, "AWS::AccountId": aws.account, "AWS::Partition": "aws",
                       "AWS::StackName": stack, "AWS::URLSuffix": "amazonaws.com"}
        self.physical = {}
        self.resolver = None
        self.dynamic_resolved = 0

    # Values read back, with the SSM dynamic references resolved as
    # CloudFormation would have (moto leaves them as they are).
    def resolve_dynamic(self, value):
        if isinstance(value, dict):
            return {self.resolve_dynamic(k): self.resolve_dynamic(v) for k, v in value.items()}
        if isinstance(value, list):
            return [self.resolve_dynamic(v) for v in value]
        if isinstance(value, str) and DYNAMIC.search(value):
            def replace(match):
                self.dynamic_resolved += 1
                return self.aws.ssm.get_parameter(Name=match.group(1))["Parameter"]["Value"]
            return DYNAMIC.sub(replace, value)
        return value

    def attribute(self, logical, name):
        kind = self.template["Resources"][logical]["Type"]
        physical = self.physical[logical]
        if kind == "AWS::SQS::Queue" and name == "Arn":
            return self.aws.sqs.get_queue_attributes(QueueUrl=physical, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        if kind == "AWS::SQS::Queue" and name == "QueueName":
            return physical.rsplit("/", 1)[-1]
        if kind == "AWS::Events::Rule" and name == "Arn":
            return self.aws.events.describe_rule(Name=physical)["Arn"]
        if kind == "AWS::Lambda::Function" and name == "Arn":
            return self.aws.lambda_.get_function(FunctionName=physical)["Configuration"]["FunctionArn"]
        if kind == "AWS::IAM::Role" and name == "Arn":
            return self.aws.iam.get_role(RoleName=physical)["Role"]["Arn"]
        raise KeyError(f"Fn::GetAtt {logical}.{name} ({kind}): not known to this test")

    def run(self):
        r = self.report
        r.start(f"{'update' if self.update else 'create'} stack {self.stack}: "
                + ", ".join(f"{k}={v}" for k, v in self.values.items()))
        resolver = Resolver(self.template, self.values, self.pseudo)
        problems = parameter_problems(self.template, resolver)
        r.check(not problems, "the values pass the parameters' constraints and the Rules (evaluated by the test)",
                "; ".join(problems))
        body, filled = fill_iam_holes(self.template, resolver)
        for change in filled:
            r.gap("fails to create an AWS::IAM::Role whose Policies list holds an Fn::If "
                  "resolving to AWS::NoValue (HTTP 500, TypeError in iam/models.py create_from_cloudformation_json): "
                  "the test resolves those items for the deployment's values before deploying", change)
        before = set()
        if self.update:
            before = {s["LogicalResourceId"] for s in
                      self.aws.cloudformation.list_stack_resources(StackName=self.stack)["StackResourceSummaries"]}
        key = f"templates/{self.stack}-{int(time.time() * 1000)}.json"
        self.aws.s3.put_object(Bucket=BUCKET, Key=key, Body=json.dumps(body).encode())
        arguments = dict(
            StackName=self.stack, TemplateURL=f"https://{BUCKET}.s3.amazonaws.com/{key}",
            Parameters=[{"ParameterKey": k, "ParameterValue": str(v)} for k, v in self.values.items()],
            Capabilities=["CAPABILITY_IAM"],
        )
        (self.aws.cloudformation.update_stack if self.update else self.aws.cloudformation.create_stack)(**arguments)
        status = self.wait()
        if not r.equal(status, "UPDATE_COMPLETE" if self.update else "CREATE_COMPLETE", "stack status"):
            return
        listed = self.aws.cloudformation.list_stack_resources(StackName=self.stack)["StackResourceSummaries"]
        self.physical = {s["LogicalResourceId"]: s["PhysicalResourceId"] for s in listed if s["LogicalResourceId"]}
        self.resolver = Resolver(self.template, self.values, self.pseudo, self.physical, self.attribute)
        expected = {n: res["Type"] for n, res in self.template["Resources"].items() if self.resolver.holds(res)}
        missing = {n: t for n, t in expected.items() if n not in self.physical}
        unexpected = sorted(set(self.physical) - set(expected))
        r.check(not unexpected, "no resource the conditions leave out", ", ".join(unexpected))
        skipped_types = sorted(set(missing.values()))
        warned = set(self.emulator.warnings())
        made = len(expected) - len(missing)
        r.check(set(skipped_types) <= MOTO_SKIPS and set(skipped_types) <= warned,
                f"{made} of {len(expected)} resources made by moto's CloudFormation; the rest are of types it skips",
                f"missing of types moto does support: {sorted(set(skipped_types) - MOTO_SKIPS - warned)}")
        for kind in skipped_types:
            count = sum(1 for t in missing.values() if t == kind)
            r.gap(f"CloudFormation skips {kind} ('Tried to parse {kind} but it's not supported by moto's "
                  "CloudFormation implementation', stack still complete): the test applies its properties, "
                  "resolved against the stack, through the service API", f"{count} x {kind} in this deployment")
        for name, kind in sorted(missing.items()):
            try:
                self.apply(name, kind)
            except Exception as error:  # the template's properties, refused by the service's API
                r.check(False, f"{name} ({kind}) applied through the API", f"{type(error).__name__}: {error}")
        self.update_role_policies(before)
        self.check_outputs()
        self.check_topics()
        self.roles = {}
        for job in JOBS:
            enabled = job.function in expected
            if enabled:
                try:
                    self.check_job(job)
                except Exception as error:
                    r.check(False, f"{job.name}: reading it back", f"{type(error).__name__}: {error}")
            else:
                r.check(job.function not in self.physical and job.role not in self.physical,
                        f"{job.name}: no function, no role (off)")
        r.start(f"{self.stack}: the functions together")
        r.equal(len(set(self.roles.values())), len(self.roles),
                f"{len(self.roles)} function(s) ({', '.join(self.roles)}), each with a role of its own")
        if self.dynamic:
            print(f"  note {self.dynamic_resolved} SSM dynamic references read back were resolved by the test")

    def wait(self):
        deadline = time.monotonic() + 60
        while True:
            status = self.aws.cloudformation.describe_stacks(StackName=self.stack)["Stacks"][0]["StackStatus"]
            if not status.endswith("_IN_PROGRESS") or time.monotonic() > deadline:
                return status
            time.sleep(0.2)

    # What moto's CloudFormation skips, applied through the services' APIs.
    def apply(self, name, kind):
        properties = self.resolver.value(self.template["Resources"][name].get("Properties", {}))
        aws = self.aws
        if kind == "AWS::CloudWatch::Alarm":
            arguments = dict(
                AlarmName=f"{self.stack}-{name}", AlarmDescription=properties["AlarmDescription"],
                Namespace=properties["Namespace"], MetricName=properties["MetricName"],
                Dimensions=[{"Name": str(d["Name"]), "Value": str(d["Value"])} for d in properties.get("Dimensions", [])],
                Statistic=properties["Statistic"], Period=int(properties["Period"]),
                EvaluationPeriods=int(properties["EvaluationPeriods"]), Threshold=float(properties["Threshold"]),
                ComparisonOperator=properties["ComparisonOperator"], TreatMissingData=properties["TreatMissingData"],
                AlarmActions=properties["AlarmActions"], OKActions=properties["OKActions"],
            )
            if "DatapointsToAlarm" in properties:
                arguments["DatapointsToAlarm"] = int(properties["DatapointsToAlarm"])
            aws.cloudwatch.put_metric_alarm(**arguments)
        elif kind == "AWS::SNS::Subscription":
            attributes = {}
            if "FilterPolicy" in properties:
                attributes["FilterPolicy"] = json.dumps(properties["FilterPolicy"])
            if "FilterPolicyScope" in properties:
                attributes["FilterPolicyScope"] = properties["FilterPolicyScope"]
            aws.sns.subscribe(TopicArn=properties["TopicArn"], Protocol=properties["Protocol"],
                              Endpoint=properties["Endpoint"], Attributes=attributes, ReturnSubscriptionArn=True)
        elif kind == "AWS::SNS::TopicPolicy":
            for topic in properties["Topics"]:
                aws.sns.set_topic_attributes(TopicArn=topic, AttributeName="Policy",
                                             AttributeValue=json.dumps(properties["PolicyDocument"]))
        elif kind == "AWS::SQS::QueuePolicy":
            for queue in properties["Queues"]:
                aws.sqs.set_queue_attributes(QueueUrl=queue, Attributes={"Policy": json.dumps(properties["PolicyDocument"])})
        elif kind == "AWS::Lambda::EventInvokeConfig":
            aws.lambda_.put_function_event_invoke_config(
                FunctionName=properties["FunctionName"], Qualifier=properties.get("Qualifier", "$LATEST"),
                MaximumRetryAttempts=int(properties["MaximumRetryAttempts"]),
                MaximumEventAgeInSeconds=int(properties["MaximumEventAgeInSeconds"]),
                DestinationConfig=properties["DestinationConfig"],
            )
        else:
            self.report.check(False, f"{name}: moto skipped {kind} and this test cannot apply it")

    def update_role_policies(self, kept):
        """moto's stack update leaves the Policies of the roles it keeps as
        they were: the template's inline policies, resolved against the
        stack, are put through IAM (and the others deleted) where they
        differ, and named."""
        iam = self.aws.iam
        for logical, resource in sorted(self.template["Resources"].items()):
            if resource.get("Type") != "AWS::IAM::Role" or logical not in kept or logical not in self.physical:
                continue
            role_name = self.physical[logical]
            wanted = {}
            for policy in self.resolver.value(resource.get("Properties", {}).get("Policies", [])):
                document = policy["PolicyDocument"]
                wanted[policy["PolicyName"]] = json.loads(document) if isinstance(document, str) else document
            have = {n: as_document(iam.get_role_policy(RoleName=role_name, PolicyName=n)["PolicyDocument"], self.report)
                    for n in iam.list_role_policies(RoleName=role_name)["PolicyNames"]}
            changed = sorted(n for n in set(wanted) | set(have) if wanted.get(n) != have.get(n))
            if not changed:
                continue
            self.report.gap("CloudFormation's stack update never changes the Policies of an AWS::IAM::Role it keeps "
                            "(iam/models.py Role.update_from_cloudformation_json sets the description and session "
                            "duration only): the test puts the template's inline policies, resolved against the "
                            "stack, through IAM where they differ",
                            f"{logical}: {', '.join(changed)} (put or deleted by the test)")
            for name in changed:
                if name in wanted:
                    iam.put_role_policy(RoleName=role_name, PolicyName=name, PolicyDocument=json.dumps(wanted[name]))
                else:
                    iam.delete_role_policy(RoleName=role_name, PolicyName=name)

    def check_topics(self):
        """The topic policies (applied by the test): who may publish."""
        r, aws, account = self.report, self.aws, self.aws.account
        wanted = {
            "Topic": ["PublishByAutoScalingAndTheListedPublishers", "NoOtherPublisher", "PublishOverTlsOnly"],
            "AlarmTopic": ["PublishByTheAccountsAlarms", "PublishOverTlsOnly"],
        }
        for logical, sids in wanted.items():
            if logical not in self.physical:
                continue
            arn = self.physical[logical]
            policy = json.loads(aws.sns.get_topic_attributes(TopicArn=arn)["Attributes"].get("Policy", "{}"))
            statements = policy.get("Statement", [])
            r.equal(([s.get("Sid") for s in statements], {s.get("Resource") for s in statements}), (sids, {arn}),
                    f"{logical} policy (applied by the test): its statements, on that topic")
            conditions = {s.get("Sid"): s.get("Condition") for s in statements}
            if logical == "Topic":
                publishers = [f"arn:aws:iam::{account}:role/aws-service-role/autoscaling.amazonaws.com/AWSServiceRoleForAutoScaling*"]
                r.equal((conditions[sids[0]], conditions[sids[1]]),
                        ({"ArnLike": {"aws:PrincipalArn": publishers}}, {"ArnNotLike": {"aws:PrincipalArn": publishers}}),
                        "Topic: only Auto Scaling's service-linked role publishes")
            else:
                r.equal(conditions[sids[0]],
                        {"StringEquals": {"aws:SourceAccount": account},
                         "ArnLike": {"aws:SourceArn": f"arn:aws:cloudwatch:{REGION}:{account}:alarm:*"}},
                        "AlarmTopic: only this account's alarms in this Region publish")

    def template_value(self, logical, *path):
        value = self.template["Resources"][logical]["Properties"]
        for key in path:
            value = value.get(key) if isinstance(value, dict) else None
        return self.resolver.value(value) if value is not None else None

    def check_outputs(self):
        outputs = {o["OutputKey"]: o["OutputValue"]
                   for o in self.aws.cloudformation.describe_stacks(StackName=self.stack)["Stacks"][0].get("Outputs", [])}
        expected = {n for n, o in self.template.get("Outputs", {}).items()
                    if "Condition" not in o or self.resolver.condition(o["Condition"])}
        self.report.equal(sorted(outputs), sorted(expected), "outputs (those of the enabled jobs)")
        self.report.equal(outputs.get("FunctionName"), f"{self.name_prefix()}-kube-rtsync", "output FunctionName")

    def name_prefix(self):
        return self.resolver.values["FunctionNamePrefix"] or self.stack

    # ---- one job --------------------------------------------------------
    def check_job(self, job):
        r, aws, v = self.report, self.aws, self.resolver.values
        dyn = self.resolve_dynamic
        name = self.physical[job.function]
        r.start(f"{self.stack}: {job.name} ({job.function})")
        r.equal(name, f"{self.name_prefix()}-{job.suffix}", "function name")
        configuration = aws.lambda_.get_function(FunctionName=name)["Configuration"]
        function_arn = configuration["FunctionArn"]
        role = aws.iam.get_role(RoleName=self.physical[job.role])["Role"]
        r.equal((configuration["Handler"], configuration["Runtime"], configuration["MemorySize"], configuration["Timeout"]),
                (job.handler, "provided.al2023", 128, job.timeout), "handler, runtime, memory, timeout")
        r.equal(configuration["Role"], role["Arn"], f"runs as its own role {job.role}")
        self.roles[job.name] = role["Arn"]
        r.equal(configuration["CodeSha256"], self.code_sha, "code: the zip uploaded for this deployment")
        concurrency = aws.lambda_.get_function_concurrency(FunctionName=name).get("ReservedConcurrentExecutions")
        r.equal(concurrency, 1, "reserved concurrency 1")
        r.gap("CloudFormation ignores AWS::Lambda::Function Architectures and LoggingConfig (reads back x86_64, "
              "no logging config): checked in the expanded template")
        r.equal(self.template_value(job.function, "Architectures"), ["arm64"], "architectures [arm64] (template)")
        logging = self.template_value(job.function, "LoggingConfig")
        r.equal((logging.get("LogFormat"), logging.get("LogGroup"), logging.get("SystemLogLevel")),
                ("JSON", self.physical[job.log_group], "WARN"), "JSON logs into its own log group (template)")
        groups = aws.logs.describe_log_groups(logGroupNamePrefix=self.physical[job.log_group])["logGroups"]
        r.equal([(g["logGroupName"], g.get("retentionInDays")) for g in groups],
                [(f"/aws/lambda/{name}", int(v["LogRetentionInDays"]))], "log group and retention")

        # Environment: the resolved per-account values.
        variables = {k: str(x) for k, x in configuration.get("Environment", {}).get("Variables", {}).items()}
        for variable, parameter in (("VPC_ID", "VpcId"), ("KUBE_CLUSTER_NAME", "ClusterName"),
                                    ("SOURCE_ROUTE_TABLE_ID", "SourceRouteTableId")):
            if variable not in variables and variable != "VPC_ID":
                continue
            raw = variables.get(variable)
            if parameter in self.dynamic:
                r.equal(raw, "{{resolve:ssm:" + self.dynamic[parameter][0] + "}}",
                        f"{variable} is the dynamic reference to {self.dynamic[parameter][0]} (SSM wins)")
            r.equal(dyn(raw), self.value_of(parameter), f"{variable} = the {parameter} of this deployment")
        r.equal(variables.get("EVENT_BUS_NAME"), v["EventBusName"],
                "EVENT_BUS_NAME = the EventBusName of this deployment")
        if job.name in ("routes", "targets"):
            r.check("KUBE_CLUSTER_NAME" in variables, "KUBE_CLUSTER_NAME is set")
        if job.name == "egress":
            r.equal(variables.get("EGRESS_REGIONAL_FALLBACK"), v["EgressRegionalFallback"],
                    "EGRESS_REGIONAL_FALLBACK = the EgressRegionalFallback of this deployment")
        if job.name == "targets":
            r.equal(variables.get("TARGET_GROUP_ARNS"), ",".join(v["TargetGroupArns"]), "TARGET_GROUP_ARNS")
        if job.name == "eip":
            table = self.physical.get("BindingTable", v["BindingTableName"])
            r.equal(variables.get("BINDING_TABLE"), table, "BINDING_TABLE: the binding table")
            described = aws.dynamodb.describe_table(TableName=table)["Table"]
            r.equal(described["KeySchema"], [{"AttributeName": "PublicIp", "KeyType": "HASH"}], "binding table key PublicIp")

        # The role: its own, exactly its policy file's statements.
        trust = role["AssumeRolePolicyDocument"]
        trust = json.loads(trust) if isinstance(trust, str) else trust
        r.equal([{k: x for k, x in exact(s).items() if k != "Sid"} for s in trust["Statement"]],
                [{"Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"}, "Action": "sts:AssumeRole"}],
                "role trust: lambda.amazonaws.com only")
        bus = v["EventBusName"]
        policies = job.policies + ([] if bus == NO_EVENT_BUS else [EVENTS_POLICY])
        names = aws.iam.list_role_policies(RoleName=role["RoleName"])["PolicyNames"]
        r.equal(sorted(names), sorted(policies + ["dead-letter-queue"]), "inline policies")
        documents = {n: dyn(as_document(aws.iam.get_role_policy(RoleName=role["RoleName"], PolicyName=n)["PolicyDocument"], r))
                     for n in names}
        if bus == NO_EVENT_BUS:
            r.check(EVENTS_POLICY not in names, f"no {EVENTS_POLICY} policy (EventBusName none)")
        else:
            bus_arn = bus if bus.startswith("arn:") else f"arn:aws:events:{REGION}:{self.aws.account}:event-bus/{bus}"
            r.equal(documents.get(EVENTS_POLICY, {}).get("Statement"),
                    [{"Sid": "PutChangeEventsOnTheBus", "Effect": "Allow", "Action": "events:PutEvents",
                      "Resource": bus_arn}],
                    f"{EVENTS_POLICY} policy: PutEvents on {bus_arn} only")
        statements = [s for n in policies for s in documents.get(n, {}).get("Statement", [])]
        r.equal([exact(s) for s in statements], self.expected_statements(job),
                f"role statements are exactly policies/{job.policy_file}'s, filled in")
        queue_url = self.physical[job.queue]
        queue_arn = self.attribute(job.queue, "Arn")
        r.equal(documents.get("dead-letter-queue", {}).get("Statement"),
                [{"Sid": "SendFailedInvocations", "Effect": "Allow", "Action": "sqs:SendMessage", "Resource": queue_arn}],
                "dead-letter-queue policy: SendMessage to its own queue only")
        r.gap("CloudFormation ignores AWS::IAM::Role ManagedPolicyArns (none attached): checked in the expanded template")
        r.equal(self.template_value(job.role, "ManagedPolicyArns"), [BASIC_EXECUTION],
                "managed policies: AWSLambdaBasicExecutionRole only (template)")

        # The dead-letter queue and who may send to it.
        attributes = aws.sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["All"])["Attributes"]
        r.equal((attributes.get("MessageRetentionPeriod"), attributes.get("SqsManagedSseEnabled")),
                ("1209600", "true"), "dead-letter queue: 14 days, SSE")
        rules = {logical: self.physical[logical] for logical in job.rules}
        rule_arns = sorted(self.attribute(logical, "Arn") for logical in job.rules)
        policy = json.loads(attributes.get("Policy", "{}"))
        statement = (policy.get("Statement") or [{}])[0]
        r.equal((len(policy.get("Statement", [])), statement.get("Principal"), statement.get("Action"),
                 statement.get("Resource"), sorted(statement.get("Condition", {}).get("ArnEquals", {}).get("aws:SourceArn", []))),
                (1, {"Service": "events.amazonaws.com"}, "sqs:SendMessage", queue_arn, rule_arns),
                "queue policy (applied by the test): EventBridge, for the function's own rules only")
        invoke = aws.lambda_.get_function_event_invoke_config(FunctionName=name)
        r.equal((invoke.get("MaximumRetryAttempts"), invoke.get("MaximumEventAgeInSeconds"),
                 invoke.get("DestinationConfig", {}).get("OnFailure", {}).get("Destination")),
                (int(v["MaximumRetryAttempts"]), int(v["MaximumEventAgeInSeconds"]), queue_arn),
                "event invoke config (applied by the test): retries, age, failures to its queue")

        # Triggers: the rules, their targets, the permissions, the subscription.
        for logical, rule_name in rules.items():
            described = aws.events.describe_rule(Name=rule_name)
            schedule = job.rules[logical]
            if isinstance(schedule, str):
                wanted_state = "ENABLED" if (job.name != "routes" or v["EnableSchedule"] == "true") else "DISABLED"
                if job.name == "routes" and v["ScheduleExpression"]:
                    schedule = v["ScheduleExpression"]
                r.equal((described.get("ScheduleExpression"), described.get("State")), (schedule, wanted_state),
                        f"rule {logical}: schedule")
            else:
                pattern, always_on, what = schedule
                wanted_state = "ENABLED" if (always_on or v["EnableInstanceStateRule"] == "true") else "DISABLED"
                r.equal((json.loads(described.get("EventPattern", "null")), described.get("State")),
                        (pattern, wanted_state), f"rule {logical}: {what}")
            targets = aws.events.list_targets_by_rule(Rule=rule_name)["Targets"]
            r.equal([(t["Arn"], t.get("DeadLetterConfig", {}).get("Arn"), t.get("RetryPolicy")) for t in targets],
                    [(function_arn, queue_arn, {"MaximumRetryAttempts": int(v["MaximumRetryAttempts"]),
                                                "MaximumEventAgeInSeconds": int(v["MaximumEventAgeInSeconds"])})],
                    f"rule {logical}: target the function, retries, dead-letter queue")
        permissions = json.loads(aws.lambda_.get_policy(FunctionName=name)["Policy"])["Statement"]
        sources = sorted((s["Principal"]["Service"], s["Condition"]["ArnLike"]["AWS:SourceArn"]) for s in permissions)
        topic = self.physical.get("Topic", v["ExistingTopicArn"])
        wanted = sorted([("events.amazonaws.com", arn) for arn in rule_arns]
                        + ([("sns.amazonaws.com", topic)] if job.subscription else []))
        r.equal(sources, wanted, "invoke permissions: its rules" + (" and the topic" if job.subscription else ""))
        if job.subscription:
            subscriptions = [s for s in aws.sns.list_subscriptions_by_topic(TopicArn=topic)["Subscriptions"]
                             if s["Endpoint"] == function_arn]
            r.equal([(s["Protocol"], s["TopicArn"]) for s in subscriptions], [("lambda", topic)],
                    "SNS subscription to the node topic (applied by the test)")

        # The alarms, applied by the test: six, every one notifying.
        alarm_names = [f"{self.stack}-{a}" for a in job.alarms if self.resolver.holds(self.template["Resources"][a])]
        alarms = aws.cloudwatch.describe_alarms(AlarmNames=alarm_names)["MetricAlarms"]
        r.equal(sorted(a["AlarmName"] for a in alarms), sorted(alarm_names),
                f"alarms (applied by the test): {', '.join(a.removeprefix(self.stack + '-') for a in alarm_names)}")
        alarm_topic = self.physical.get("AlarmTopic", v["AlarmTopicArn"])
        dimension_values = {
            "FunctionName": name, "QueueName": queue_url.rsplit("/", 1)[-1], "VpcId": self.value_of("VpcId"),
            "ClusterName": self.value_of("ClusterName"), "SourceRouteTableId": self.value_of("SourceRouteTableId"),
            "RouterId": v["EgressRouterId"], "Job": job.name,
        }
        wrong = []
        for alarm in alarms:
            if alarm["AlarmActions"] != [alarm_topic] or alarm["OKActions"] != [alarm_topic]:
                wrong.append(f"{alarm['AlarmName']}: actions {alarm['AlarmActions']} / {alarm['OKActions']}")
            for dimension in alarm["Dimensions"]:
                if dyn(dimension["Value"]) != dimension_values.get(dimension["Name"]):
                    wrong.append(f"{alarm['AlarmName']}: {dimension['Name']}={dimension['Value']}")
                if self.dynamic and dimension["Name"] in self.dynamic and not DYNAMIC.fullmatch(dimension["Value"]):
                    wrong.append(f"{alarm['AlarmName']}: {dimension['Name']} is not the SSM reference")
        r.check(not wrong, "every alarm notifies the alarm topic (alarm and OK); dimensions name this function, "
                           "its queue, the VPC, the cluster", "; ".join(wrong))

    def value_of(self, parameter):
        """A per-account value of this deployment: from SSM when named."""
        if parameter in self.dynamic:
            return self.dynamic[parameter][1]
        return self.resolver.values[parameter]

    def expected_statements(self, job):
        v = self.resolver.values
        document = json.loads((ROOT / "policies" / job.policy_file).read_text())
        fill = {
            "${AWS::Partition}": "aws", "${AWS::Region}": REGION, "${AWS::AccountId}": self.aws.account,
            "${VpcId}": self.value_of("VpcId"), "${ClusterName}": self.value_of("ClusterName"),
            "${SourceRouteTableId}": self.value_of("SourceRouteTableId"),
            "${EipPoolTagKey}": v["EipPoolTagKey"], "${EipPoolTagValue}": v["EipPoolTagValue"],
            "${DnsZoneId}": v["DnsZoneId"], "${DnsSuffix}": v["DnsSuffix"],
            "${EipBindingTable}": self.physical.get("BindingTable", v["BindingTableName"]),
            "${EventBusName}": v["EventBusName"],
        }
        statements = replace_strings(document["Statement"], fill)
        # The change-events statement: on the bus of that name, on the ARN
        # as given, or absent with EventBusName none.
        bus = v["EventBusName"]
        for statement in list(statements):
            if statement.get("Action") == "events:PutEvents":
                if bus == NO_EVENT_BUS:
                    statements.remove(statement)
                elif bus.startswith("arn:"):
                    statement["Resource"] = bus
        if job.name == "targets":
            # The file's example groups stand for TargetGroupArns.
            for statement in statements:
                if "elasticloadbalancing:RegisterTargets" in statement["Action"]:
                    statement["Resource"] = list(v["TargetGroupArns"])
        return [exact(s) for s in statements]


def main():
    report = Report()
    started = time.monotonic()
    for tool in (SAM_PYTHON, MOTO_SERVER):
        if not tool.exists():
            raise SystemExit(f"deploy_test: {tool} is missing: run make venv sam-tools")
    # Never AWS: no profile, no credentials but dummies, every client on the emulator.
    for variable in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN"):
        os.environ.pop(variable, None)
    os.environ.update(AWS_ACCESS_KEY_ID="test", AWS_SECRET_ACCESS_KEY="test", AWS_DEFAULT_REGION=REGION,
                      AWS_REGION=REGION, AWS_CONFIG_FILE=os.devnull, AWS_SHARED_CREDENTIALS_FILE=os.devnull,
                      AWS_EC2_METADATA_DISABLED="true")
    with tempfile.TemporaryDirectory(prefix="kube-rtsync-deploy-test-") as directory:
        directory = Path(directory)
        release_path = directory / "kube-rtsync.template.json"
        subprocess.run([str(SAM_PYTHON), str(ROOT / "scripts" / "release_template.py"), "--output", str(release_path)],
                       check=True)
        release = json.loads(release_path.read_text())
        with Emulator(directory / "moto.log") as emulator:
            os.environ["AWS_ENDPOINT_URL"] = emulator.url
            print(f"deploy_test: moto on {emulator.url}")
            aws = Aws(emulator.url)
            aws.s3.create_bucket(Bucket=BUCKET)
            code, code_sha = placeholder_zip("sam package")
            aws.s3.put_object(Bucket=BUCKET, Key=CODE_KEY, Body=code)
            vpc = aws.ec2.create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
            table = aws.ec2.create_route_table(VpcId=vpc)["RouteTable"]["RouteTableId"]
            sample = {"VpcId": vpc, "ClusterName": "k8s.example.com", "SourceRouteTableId": table}

            # A: the defaults, routes only.
            values = dict(sample)
            template = expand_for_sam_deploy(values, directory / "a.json")
            Deployment(aws, report, emulator, "kube-rtsync", template, values, code_sha).run()

            # B: the same stack, all four jobs.
            jobs = {
                "EnableEgress": "true", "EnableTargets": "true", "EnableEip": "true",
                "TargetGroupArns": f"arn:aws:elasticloadbalancing:{REGION}:{aws.account}:targetgroup/nodes-30080/0123456789abcdef",
                "TargetNodeTags": "kops.k8s.io/instancegroup=nodes",
                "EipNodeTags": "karpenter.sh/nodepool=edge", "EipPoolTags": "kube-rtsync/eip-pool=edge",
                "EipPoolTagValue": "edge", "DnsZoneId": "Z0123456789ABCDEFGHIJ", "DnsSuffix": "nodes.example.com",
            }
            values = {**sample, **jobs, "EventBusName": "platform/kube-rtsync", "EgressRegionalFallback": "true"}
            template = expand_for_sam_deploy(values, directory / "b.json")
            Deployment(aws, report, emulator, "kube-rtsync", template, values, code_sha, update=True).run()

            # C: the release template, one bucket per Region, the per-account
            # values from SSM.
            release_bucket = f"{RELEASE_PREFIX}-{REGION}"
            aws.s3.create_bucket(Bucket=release_bucket)
            release_code, release_sha = placeholder_zip("release")
            release_key = release["Parameters"]["CodeKey"]["Default"]
            aws.s3.put_object(Bucket=release_bucket, Key=release_key, Body=release_code)
            vpc2 = aws.ec2.create_vpc(CidrBlock="10.1.0.0/16")["Vpc"]["VpcId"]
            table2 = aws.ec2.create_route_table(VpcId=vpc2)["RouteTable"]["RouteTableId"]
            dynamic = {"VpcId": ("/kube-rtsync/vpc-id", vpc2), "ClusterName": ("/kube-rtsync/cluster-name", "k8s-2.example.com"),
                       "SourceRouteTableId": ("/kube-rtsync/source-route-table-id", table2)}
            for name, value in dynamic.values():
                aws.ssm.put_parameter(Name=name, Value=value, Type="String")
            values = {"CodeBucketPrefix": RELEASE_PREFIX, "FunctionNamePrefix": "krs-org", **jobs,
                      **{f"{p}SsmParameter": name for p, (name, _) in dynamic.items()},
                      "EventBusName": "arn:aws:events:us-west-2:111122223333:event-bus/platform-audit"}
            Deployment(aws, report, emulator, "kube-rtsync-ssm", release, values, release_sha, dynamic=dynamic).run()

            # D: all four jobs, change events off.
            values = {**sample, **jobs, "EventBusName": NO_EVENT_BUS}
            template = expand_for_sam_deploy(values, directory / "d.json")
            Deployment(aws, report, emulator, "kube-rtsync-quiet", template, values, code_sha).run()

    elapsed = time.monotonic() - started
    print(f"\n== summary ({elapsed:.0f} s)")
    if report.gaps:
        print("moto's gaps, checked another way:")
        for gap in report.gaps:
            print(f"  - {gap}")
    if report.failures:
        print(f"deploy_test: {len(report.failures)} failure(s):", file=sys.stderr)
        for failure in report.failures:
            print(f"  {failure}", file=sys.stderr)
        return 1
    print("deploy_test: every deployment read back as the template says")
    return 0


if __name__ == "__main__":
    sys.exit(main())
