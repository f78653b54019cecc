#!/usr/bin/env python3
"""Writes the release template, dist/kube-rtsync.template.json: template.yaml
expanded to plain CloudFormation (no Transform) by the SAM translator, for
StackSets (which refuse macros such as AWS::Serverless with service-managed
permissions) and for any account and Region. Run it with .venv-sam/bin/python
(the translator ships with the SAM CLI); `make release` does.

Its differences from template.yaml, all additive for an existing stack:
- every function's code is s3://<CodeBucketPrefix>-<AWS::Region>/<CodeKey>
  (parameters CodeBucketPrefix, and CodeKey defaulting to this release's
  zip, kube-rtsync-<version>-arm64.zip): one template serves every Region,
  each Region reading its own bucket;
- VpcId is a String that may be empty (template.yaml: AWS::EC2::VPC::Id,
  required): CloudFormation checks an AWS::EC2::VPC::Id value against the
  VPCs of the account it deploys to, so no single value could serve every
  account of a stack set whose VPC comes from VpcIdSsmParameter. The rule
  NeedsAVpc requires VpcId or VpcIdSsmParameter. Every value template.yaml
  accepts, this template accepts;
- no AWS::ServerlessRepo::Application metadata (its LicenseUrl and ReadmeUrl
  are files beside template.yaml; make publish uses template.yaml) and no
  build metadata (sam build's) on the functions and what SAM makes of them.

Then it checks the output (and refuses to keep it when a check fails): no
Transform and no AWS::Serverless resource, every function's code from the
two parameters, no parameter value baked in by the translator (it resolves
EventInvokeConfig's retry settings with the values it is given; it is given
none), no literal 12-digit account id and no literal Region name
anywhere, under CloudFormation's size limits; and cfn-lint on it.

  release_template.py [--output dist/kube-rtsync.template.json]
  release_template.py --check     # build it in a temporary directory and check it (make lint)
"""
import argparse
import json
import re
import subprocess
import sys
import tempfile
import tomllib
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from sam_expand import ROOT, expand, load_template  # noqa: E402

DEFAULT_OUTPUT = ROOT / "dist" / "kube-rtsync.template.json"
CODE_URI = {"Bucket": {"Fn::Sub": "${CodeBucketPrefix}-${AWS::Region}"}, "Key": {"Ref": "CodeKey"}}
CODE = {"S3Bucket": CODE_URI["Bucket"], "S3Key": CODE_URI["Key"]}
# Literal account ids and Region names (and Availability Zone names, which
# begin with one): the template must take them from AWS::AccountId and
# AWS::Region.
ACCOUNT_ID = re.compile(r"(?<![0-9])[0-9]{12}(?![0-9])")
REGION = re.compile(
    r"(?<![a-z0-9])(?:us|eu|eusc|ap|sa|ca|me|af|il|mx|cn)(?:-gov|-iso[a-z]?)?-"
    r"(?:north|south|east|west|central|northeast|southeast|northwest|southwest)-[0-9]+"
)
# CloudFormation's limits: --template-body up to 51,200 bytes, a template in
# S3 (--template-url) up to 1 MB.
BODY_LIMIT, URL_LIMIT = 51_200, 1_000_000
DESCRIPTION_LIMIT = 1024


def version():
    return tomllib.loads((ROOT / "Cargo.toml").read_text())["package"]["version"]


def zip_name(release):
    return f"kube-rtsync-{release}-arm64.zip"


def not_empty(parameter):
    return {"Fn::Not": [{"Fn::Equals": [{"Ref": parameter}, ""]}]}


def release_template(release):
    template = expand(load_template(), CODE_URI)
    template["Description"] = (
        f"{template['Description']} Release {release}, plain CloudFormation: the code is "
        "s3://<CodeBucketPrefix>-<region>/<CodeKey>."
    )
    code_parameters = {
        "CodeBucketPrefix": {
            "Type": "String",
            "AllowedPattern": "^[a-z0-9][a-z0-9.-]{1,47}$",
            "ConstraintDescription": "the start of an S3 bucket name: lower-case letters, digits, . and - (at most 48).",
            "Description": (
                "The functions' code is read from the bucket <CodeBucketPrefix>-<region> of the Region the "
                "stack is in (e.g. kube-rtsync-artifacts gives kube-rtsync-artifacts-<region>), one per Region."
            ),
        },
        "CodeKey": {
            "Type": "String",
            "Default": zip_name(release),
            "AllowedPattern": "^[A-Za-z0-9_.+=/-]{1,1020}[.]zip$",
            "ConstraintDescription": "an S3 key ending in .zip.",
            "Description": (
                "The key of the functions' zip in that bucket; it names the version "
                f"(kube-rtsync-<version>-arm64.zip). Default: this template's release, {zip_name(release)}."
            ),
        },
    }
    template["Parameters"] = {**code_parameters, **template["Parameters"]}
    vpc = template["Parameters"]["VpcId"]
    template["Parameters"]["VpcId"] = {
        "Type": "String",
        "Default": "",
        "AllowedPattern": "^(vpc-[0-9a-f]{8,17})?$",
        "ConstraintDescription": "empty (with VpcIdSsmParameter set), or a VPC id (vpc-...).",
        "Description": vpc["Description"] + (
            " Empty when VpcIdSsmParameter names each account's VPC (a String here, where template.yaml "
            "has an AWS::EC2::VPC::Id, so that a stack set need not name one VPC for every account)."
        ),
    }
    template.setdefault("Rules", {})["NeedsAVpc"] = {
        "Assertions": [{
            "Assert": {"Fn::Or": [not_empty("VpcId"), not_empty("VpcIdSsmParameter")]},
            "AssertDescription": "Set VpcId, or VpcIdSsmParameter (an SSM parameter of each account holding its VPC id).",
        }]
    }
    metadata = template.get("Metadata", {})
    metadata.pop("AWS::ServerlessRepo::Application", None)
    interface = metadata.get("AWS::CloudFormation::Interface")
    if interface is not None:
        interface["ParameterGroups"].insert(0, {"Label": {"default": "Code"}, "Parameters": list(code_parameters)})
    for resource in template["Resources"].values():
        # VpcId may be empty here only with VpcIdSsmParameter set, whose value
        # then fills the dimension (rule NeedsAVpc), which cfn-lint cannot
        # tell: W1030 would call the VpcId dimension's value empty.
        dimensions = resource.get("Properties", {}).get("Dimensions", [])
        if resource.get("Type") == "AWS::CloudWatch::Alarm" and any(d.get("Name") == "VpcId" for d in dimensions):
            ignored = (resource.setdefault("Metadata", {}).setdefault("cfn-lint", {}).setdefault("config", {})
                       .setdefault("ignore_checks", []))
            if "W1030" not in ignored:
                ignored.append("W1030")
        # The build's (sam build), which the translator copies to what it
        # makes of a function.
        if "Metadata" in resource:
            for key in ("BuildMethod", "BuildProperties"):
                resource["Metadata"].pop(key, None)
            if not resource["Metadata"]:
                del resource["Metadata"]
    return template


def serialise(template):
    # Compact: the size counts against CloudFormation's limits.
    return json.dumps(template, separators=(",", ":"), sort_keys=False) + "\n"


def check(template, path):
    """Problems of the release template written at `path`; empty when it is
    fit to publish."""
    problems = []
    text = Path(path).read_text()
    if "Transform" in template:
        problems.append(f"it has a Transform ({template['Transform']!r}): StackSets refuse macros")
    for name, resource in template.get("Resources", {}).items():
        kind = str(resource.get("Type", ""))
        if kind.startswith("AWS::Serverless::"):
            problems.append(f"{name} is still a {kind}")
        if kind == "AWS::Lambda::EventInvokeConfig":
            # The translator resolves these with the parameter values it is
            # given: here, none (sam_expand), so they must stay parameters.
            for key in ("MaximumRetryAttempts", "MaximumEventAgeInSeconds"):
                if resource.get("Properties", {}).get(key) != {"Ref": key}:
                    problems.append(f"{name}'s {key} must be !Ref {key}, not a value baked in at expansion")
        if kind == "AWS::Lambda::Function" and resource.get("Properties", {}).get("Code") != CODE:
            problems.append(
                f"{name}'s code must be {json.dumps(CODE)}, not {json.dumps(resource.get('Properties', {}).get('Code'))}"
            )
    for name in ("CodeBucketPrefix", "CodeKey"):
        if name not in template.get("Parameters", {}):
            problems.append(f"no {name} parameter")
    for pattern, what in ((ACCOUNT_ID, "a literal 12-digit account id"), (REGION, "a literal Region name")):
        for match in sorted(set(pattern.findall(text))):
            start = text.find(match)
            problems.append(f"{what}: {match!r} (near {text[max(0, start - 60):start + 40]!r})")
    if len(template.get("Description", "")) > DESCRIPTION_LIMIT:
        problems.append(f"its Description is longer than CloudFormation's {DESCRIPTION_LIMIT} characters")
    size = len(text.encode())
    if size > URL_LIMIT:
        problems.append(f"{size} bytes: more than CloudFormation's {URL_LIMIT} for a template in S3")
    lint = subprocess.run(
        [str(Path(sys.executable).parent / "cfn-lint"), str(path)], capture_output=True, text=True
    )
    if lint.returncode != 0:
        problems.append("cfn-lint:\n" + (lint.stdout + lint.stderr).strip())
    return problems, size


def write_and_check(output):
    release = version()
    template = release_template(release)
    output = Path(output)
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(serialise(template))
    problems, size = check(template, output)
    for problem in problems:
        print(f"release_template: {problem}", file=sys.stderr)
    if problems:
        output.unlink()
        return 1
    how = "--template-body" if size <= BODY_LIMIT else f"--template-url (more than {BODY_LIMIT} bytes for --template-body)"
    print(
        f"release_template: {output.name}: {size} bytes, release {release}, {len(template['Resources'])} resources, "
        f"no Transform, code from CodeBucketPrefix/CodeKey, no literal account or Region, cfn-lint clean; "
        f"deploy it with {how}"
    )
    return 0


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--output", default=str(DEFAULT_OUTPUT))
    parser.add_argument("--check", action="store_true", help="build it in a temporary directory and check it only")
    args = parser.parse_args()
    if args.check:
        with tempfile.TemporaryDirectory() as directory:
            return write_and_check(Path(directory) / DEFAULT_OUTPUT.name)
    return write_and_check(args.output)


if __name__ == "__main__":
    sys.exit(main())
