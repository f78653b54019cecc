#!/usr/bin/env python3
"""Expands template.yaml (Transform: AWS::Serverless-2016-10-31) into plain
CloudFormation, offline, with the SAM translator the SAM CLI ships
(samtranslator): run it with .venv-sam/bin/python.

What CloudFormation's AWS::Serverless transform does when `sam deploy` hands
it the packaged template, done here so that the result can be deployed where
the transform is not available (moto's CloudFormation, StackSets with
service-managed permissions) and read by a person.

Offline: the translator looks up AWS managed policies by name (through IAM)
only for a function's SAM `Policies`; this template gives every function an
explicit role, so the lookup is never needed, and the loader here refuses it
instead of calling AWS.

  sam_expand.py --code-uri s3://BUCKET/KEY [--parameter K=V ...] [--output FILE]

gives what CloudFormation's transform gives `sam deploy` for a stack with those
parameter values (the code where `sam package` uploaded it).
"""
import argparse
import copy
import json
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SAM_FUNCTION = "AWS::Serverless::Function"


class OfflineManagedPolicies:
    """The translator's managed-policy loader, offline: a SAM `Policies` entry
    naming an AWS managed policy would need IAM, so it is refused."""

    def load(self):
        raise SystemExit(
            "sam_expand: the SAM translator asked for the AWS managed policy map (a function's SAM Policies "
            "name a managed policy); offline there is none: give the role explicitly, or the policy's ARN"
        )


def load_template(path=ROOT / "template.yaml"):
    from samtranslator.yaml_helper import yaml_parse

    return yaml_parse(Path(path).read_text())


def expand(template, code_uri, parameter_values=None):
    """The template, every function's CodeUri set to `code_uri` (an
    s3://bucket/key string, or a {Bucket, Key} dict that may hold
    intrinsics), translated to plain CloudFormation.

    parameter_values: what CloudFormation's transform is given, the stack's
    parameter values (the translator adds the defaults of the others). The
    translator resolves a few properties with them (EventInvokeConfig's
    MaximumRetryAttempts and MaximumEventAgeInSeconds), as the transform does
    for that stack. None: a template for any values, where every parameter
    stays an intrinsic: the translator is then given the parameters without
    their defaults (else it would bake the defaults in), and the output gets
    them back."""
    from samtranslator.translator.transform import transform

    # The translator reads a region for ARNs of its own (never calls AWS).
    os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
    template = copy.deepcopy(template)
    for resource in template["Resources"].values():
        if resource.get("Type") == SAM_FUNCTION:
            resource["Properties"]["CodeUri"] = copy.deepcopy(code_uri)
    parameters = copy.deepcopy(template.get("Parameters", {}))
    if parameter_values is None:
        for parameter in template.get("Parameters", {}).values():
            parameter.pop("Default", None)
    expanded = transform(template, dict(parameter_values or {}), OfflineManagedPolicies())
    if parameter_values is None:
        expanded["Parameters"] = parameters
    if "Transform" in expanded or any(
        str(r.get("Type", "")).startswith("AWS::Serverless::") for r in expanded["Resources"].values()
    ):
        raise SystemExit("sam_expand: the translator left SAM in the output")
    return expanded


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--template", default=str(ROOT / "template.yaml"))
    parser.add_argument("--code-uri", required=True, help="s3://bucket/key of the function code (every function)")
    parser.add_argument(
        "--parameter", action="append", default=[], metavar="KEY=VALUE",
        help="a parameter value of the stack, as CloudFormation gives the transform (repeatable)",
    )
    parser.add_argument("--output", help="where to write the JSON (default: stdout)")
    args = parser.parse_args()
    if not args.code_uri.startswith("s3://"):
        parser.error("--code-uri must be s3://bucket/key")
    values = dict(p.split("=", 1) for p in args.parameter)
    expanded = expand(load_template(args.template), args.code_uri, values)
    text = json.dumps(expanded, indent=1, sort_keys=False) + "\n"
    if args.output:
        Path(args.output).write_text(text)
    else:
        sys.stdout.write(text)


if __name__ == "__main__":
    main()
