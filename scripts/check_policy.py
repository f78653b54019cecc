#!/usr/bin/env python3
"""Checks that template.yaml grants the function exactly the statements of
policies/kube-rtsync.json, and that no route-writing statement is unscoped.

The JSON file keeps CloudFormation's ${...} placeholders; the template wraps
the same strings in !Sub.
"""
import json
import sys
from pathlib import Path

from cfnlint.decode import decode  # cfn-lint's YAML loader understands !Sub and friends

ROOT = Path(__file__).resolve().parent.parent
WRITES = {"ec2:CreateRoute", "ec2:ReplaceRoute", "ec2:DeleteRoute"}


def unsub(value):
    """Replaces {"Fn::Sub": "text"} by "text", recursively."""
    if isinstance(value, dict):
        if set(value) == {"Fn::Sub"} and isinstance(value["Fn::Sub"], str):
            return value["Fn::Sub"]
        return {k: unsub(v) for k, v in value.items()}
    if isinstance(value, list):
        return [unsub(v) for v in value]
    return value


def main() -> int:
    template, errors = decode(str(ROOT / "template.yaml"))
    if errors:
        print("\n".join(str(e) for e in errors))
        return 1
    policies = template["Resources"]["Function"]["Properties"]["Policies"]
    from_template = json.loads(json.dumps(unsub(policies[0])))
    from_file = json.loads((ROOT / "policies" / "kube-rtsync.json").read_text())
    problems = []
    if len(policies) != 1:
        problems.append(f"the function has {len(policies)} policies; expected exactly the one of policies/")
    if from_template != from_file:
        problems.append("template.yaml and policies/kube-rtsync.json differ:\n"
                        f"  template: {json.dumps(from_template, sort_keys=True)}\n"
                        f"  file:     {json.dumps(from_file, sort_keys=True)}")
    for statement in from_file["Statement"]:
        actions = statement["Action"]
        actions = {actions} if isinstance(actions, str) else set(actions)
        if actions & WRITES:
            resource = statement.get("Resource")
            if resource == "*" or not str(resource).endswith(":route-table/*"):
                problems.append(f"{statement.get('Sid')}: route writes must be scoped to route tables, not {resource!r}")
            if "ec2:Vpc" not in json.dumps(statement.get("Condition", {})):
                problems.append(f"{statement.get('Sid')}: route writes must carry an ec2:Vpc condition")
    for p in problems:
        print(f"check_policy: {p}", file=sys.stderr)
    if not problems:
        print("check_policy: template.yaml and policies/kube-rtsync.json agree; route writes are scoped to the VPC")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
