#!/usr/bin/env python3
"""Checks what a release publishes besides the code:

- template.yaml's AWS::ServerlessRepo::Application metadata (what `sam publish`
  sends to the Serverless Application Repository) has every field: Name,
  Description, Author (what `sam publish` requires to create the application),
  SemanticVersion (to create a version), SpdxLicenseId, LicenseUrl, ReadmeUrl,
  Labels, HomePageUrl and SourceCodeUrl, each within the repository's limits
  (CreateApplication: Name 1-140 of [a-zA-Z0-9-]; Description 1-256; Author
  1-127, lower-case letters, digits and single hyphens; at most 10 Labels of
  1-127 of [a-zA-Z0-9+-_:/@]; LicenseUrl or LicenseBody, ReadmeUrl or
  ReadmeBody, not both);
- SemanticVersion is Cargo.toml's version (semver) and SpdxLicenseId its
  license;
- LicenseUrl and ReadmeUrl name files beside template.yaml (sam package uploads
  them), LICENSE is the Apache License 2.0 and README.md is not empty;
- CHANGELOG.md has a section for that version.
"""
import re
import sys
import tomllib
from pathlib import Path

from cfnlint.decode import decode

ROOT = Path(__file__).resolve().parent.parent
SAR = "AWS::ServerlessRepo::Application"
FIELDS = ("Name", "Description", "Author", "SpdxLicenseId", "LicenseUrl", "ReadmeUrl", "Labels", "HomePageUrl",
          "SemanticVersion", "SourceCodeUrl")
NAME = re.compile(r"[a-zA-Z0-9-]{1,140}")
AUTHOR = re.compile(r"[a-z0-9](([a-z0-9]|-(?!-))*[a-z0-9])?")
LABEL = re.compile(r"[a-zA-Z0-9+\-_:/@]{1,127}")
URL = re.compile(r"https://[A-Za-z0-9.-]+(/[A-Za-z0-9._~%/-]*)?")
# semver.org's 2.0.0 grammar.
SEMVER = re.compile(
    r"(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)(?:-((?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*)"
    r"(?:\.(?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*))*))?(?:\+([0-9a-zA-Z-]+(?:\.[0-9a-zA-Z-]+)*))?"
)


def check_sar(template, package, problems):
    metadata = template.get("Metadata", {}).get(SAR)
    if not isinstance(metadata, dict):
        problems.append(f"template.yaml has no Metadata {SAR}")
        return
    for field in FIELDS:
        if not metadata.get(field):
            problems.append(f"{SAR} has no {field}")
    for field in ("LicenseBody", "ReadmeBody"):
        if field in metadata:
            problems.append(f"{SAR}: {field} is given with {field.replace('Body', 'Url')}: the repository takes one")
    name, description, author = (str(metadata.get(f, "")) for f in ("Name", "Description", "Author"))
    if not NAME.fullmatch(name):
        problems.append(f"{SAR} Name {name!r}: 1 to 140 letters, digits and hyphens")
    if not 1 <= len(description) <= 256:
        problems.append(f"{SAR} Description: 1 to 256 characters, not {len(description)}")
    if not (len(author) <= 127 and AUTHOR.fullmatch(author)):
        problems.append(f"{SAR} Author {author!r}: 1 to 127 lower-case letters, digits and single inner hyphens")
    labels = metadata.get("Labels") or []
    if not isinstance(labels, list) or len(labels) > 10:
        problems.append(f"{SAR} Labels: a list of at most 10")
    else:
        for label in labels:
            if not LABEL.fullmatch(str(label)):
                problems.append(f"{SAR} label {label!r}: 1 to 127 of letters, digits and + - _ : / @")
    for field in ("HomePageUrl", "SourceCodeUrl"):
        if metadata.get(field) and not URL.fullmatch(str(metadata[field])):
            problems.append(f"{SAR} {field} {metadata[field]!r} is no https URL")
    semantic = str(metadata.get("SemanticVersion", ""))
    if not SEMVER.fullmatch(semantic):
        problems.append(f"{SAR} SemanticVersion {semantic!r} is no semantic version")
    if semantic != package["version"]:
        problems.append(f"{SAR} SemanticVersion {semantic!r} is not Cargo.toml's version {package['version']!r}")
    if metadata.get("SpdxLicenseId") != package.get("license"):
        problems.append(f"{SAR} SpdxLicenseId {metadata.get('SpdxLicenseId')!r} is not Cargo.toml's license "
                        f"{package.get('license')!r}")
    for field in ("LicenseUrl", "ReadmeUrl"):
        value = metadata.get(field)
        if value and not (ROOT / str(value)).is_file():
            problems.append(f"{SAR} {field} {value!r}: no such file beside template.yaml")
    license_file = ROOT / str(metadata.get("LicenseUrl", "LICENSE"))
    if license_file.is_file():
        text = license_file.read_text()
        if metadata.get("SpdxLicenseId") == "Apache-2.0" and not (
            "Apache License" in text[:200] and "Version 2.0, January 2004" in text[:300]
            and "END OF TERMS AND CONDITIONS" in text
        ):
            problems.append(f"{license_file.name} is not the Apache License 2.0 text")
    readme = ROOT / str(metadata.get("ReadmeUrl", "README.md"))
    if readme.is_file() and not readme.read_text().strip():
        problems.append(f"{readme.name} is empty")


def check_changelog(package, problems):
    changelog = ROOT / "CHANGELOG.md"
    if not changelog.is_file():
        problems.append("no CHANGELOG.md")
        return
    if not re.search(rf"^## \[{re.escape(package['version'])}\]", changelog.read_text(), re.MULTILINE):
        problems.append(f"CHANGELOG.md has no section ## [{package['version']}]")


def main() -> int:
    template, errors = decode(str(ROOT / "template.yaml"))
    if errors:
        print("\n".join(str(e) for e in errors))
        return 1
    package = tomllib.loads((ROOT / "Cargo.toml").read_text())["package"]
    problems = []
    check_sar(template, package, problems)
    check_changelog(package, problems)
    for problem in problems:
        print(f"check_release: {problem}", file=sys.stderr)
    if problems:
        return 1
    print(f"check_release: {SAR} is complete (version {package['version']}, {package['license']}, "
          "LICENSE and README.md beside the template); CHANGELOG.md has the release")
    return 0


if __name__ == "__main__":
    sys.exit(main())
