//! The configuration contract is one list per job in the code: every
//! variable must be documented in its job's table and set by the template,
//! or this test fails when they drift.

use kube_rtsync::jobs::{egress, eip, routes, targets};
use kube_rtsync::shared::config::SHARED_VARIABLES;

fn read(path: &str) -> String {
    std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/").to_owned() + path).unwrap()
}

/// The variables a configuration table documents (rows starting with `|
/// \`NAME\``).
fn documented(markdown: &str) -> Vec<String> {
    markdown
        .lines()
        .filter_map(|l| l.strip_prefix("| `")?.split('`').next().map(str::to_owned))
        .filter(|v| v.chars().all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_'))
        .collect()
}

#[test]
fn every_variable_is_documented_and_set_by_the_template() {
    let template = read("template.yaml");
    let jobs: [(&str, &[&str], String); 4] = [
        ("routes", routes::config::VARIABLES, read("README.md")),
        ("egress", egress::config::VARIABLES, read("docs/egress.md")),
        ("targets", targets::config::VARIABLES, read("docs/targets.md")),
        ("eip", eip::config::VARIABLES, read("docs/eip.md")),
    ];
    let readme = documented(&read("README.md"));
    for variable in SHARED_VARIABLES {
        assert!(readme.iter().any(|d| d == variable), "{variable} is not in the README's configuration table");
    }
    for (job, variables, page) in jobs {
        let page = documented(&page);
        for variable in variables.iter().chain(SHARED_VARIABLES) {
            assert!(
                template.lines().any(|l| l.trim_start().starts_with(&format!("{variable}:"))),
                "{job}: {variable} is not set by template.yaml"
            );
        }
        for variable in variables.iter() {
            assert!(page.iter().any(|d| d == variable), "{job}: {variable} is not in its page's configuration table");
        }
    }
}

#[test]
fn the_documented_routes_variables_are_the_code_s() {
    // The README's table lists exactly the shared and the routes variables
    // (and the handler name Lambda sets).
    let mut documented = documented(&read("README.md"));
    documented.retain(|v| v != "_HANDLER");
    documented.sort();
    let mut code: Vec<String> =
        SHARED_VARIABLES.iter().chain(routes::config::VARIABLES).map(|v| v.to_string()).collect();
    code.sort();
    assert_eq!(documented, code);
}

#[test]
fn the_binary_says_its_version_and_the_commit_it_was_built_from() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_kube-rtsync")).arg("--version").output().unwrap();
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    let version = text.trim().strip_prefix("kube-rtsync ").unwrap_or_else(|| panic!("{text}"));
    let (crate_version, commit) = version.split_once('+').unwrap_or_else(|| panic!("{text}"));
    assert_eq!(crate_version, env!("CARGO_PKG_VERSION"));
    assert!(commit == "unknown" || commit.len() == 12 && commit.chars().all(|c| c.is_ascii_hexdigit()), "{text}");
    assert_eq!(version, kube_rtsync::VERSION);
}

#[test]
fn every_job_has_a_sample_change_event_in_the_documented_shape() {
    let keys = ["change", "from", "invocationId", "job", "reason", "resource", "to", "vpcId"];
    for job in ["routes", "egress", "targets", "eip"] {
        let sample: serde_json::Value = serde_json::from_str(&read(&format!("events/change-{job}.json")))
            .unwrap_or_else(|e| panic!("events/change-{job}.json: {e}"));
        assert_eq!(sample["source"], "kube-rtsync", "{job}");
        assert_eq!(sample["detail-type"], format!("{job} change"), "{job}");
        let detail = sample["detail"].as_object().unwrap_or_else(|| panic!("{job}: no detail"));
        let mut found: Vec<&str> = detail.keys().map(String::as_str).collect();
        found.sort();
        assert_eq!(found, keys, "{job}: the detail's fields");
        assert_eq!(detail["job"], job);
        for field in ["change", "reason", "resource", "vpcId", "invocationId"] {
            assert!(detail[field].as_str().is_some_and(|v| !v.is_empty()), "{job}: {field}");
        }
        assert!(detail["from"].is_string() || detail["to"].is_string(), "{job}: from or to");
        let resources = sample["resources"].as_array().unwrap();
        assert!(
            !resources.is_empty() && resources.iter().all(|r| r.as_str().unwrap().starts_with("arn:aws:")),
            "{job}"
        );
        let page = if job == "routes" { read("README.md") } else { read(&format!("docs/{job}.md")) };
        assert!(page.contains(&format!("events/change-{job}.json")), "{job}: the sample is not named on its page");
    }
}

/// Comments are wrapped at one width, 80 columns, whatever the code's
/// (rustfmt's `max_width`); a line longer than that must be one word that
/// cannot be broken (a URL, an ARN).
#[test]
fn comments_are_wrapped_at_80_columns() {
    fn walk(dir: &std::path::Path, files: &mut Vec<std::path::PathBuf>) {
        for entry in std::fs::read_dir(dir).unwrap().flatten() {
            let path = entry.path();
            if path.is_dir() {
                walk(&path, files);
            } else if path.extension().is_some_and(|e| e == "rs") {
                files.push(path);
            }
        }
    }
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files = Vec::new();
    for dir in ["src", "tests", "examples", "benches"] {
        walk(&root.join(dir), &mut files);
    }
    assert!(files.len() > 50, "found only {} files", files.len());
    let mut long = Vec::new();
    for file in &files {
        for (n, line) in std::fs::read_to_string(file).unwrap().lines().enumerate() {
            let text = line.trim_start();
            let unbreakable = text.split_whitespace().count() <= 2;
            if text.starts_with("//") && line.chars().count() > 80 && !unbreakable {
                long.push(format!("{}:{}", file.strip_prefix(root).unwrap().display(), n + 1));
            }
        }
    }
    assert!(long.is_empty(), "comment lines over 80 columns: {long:?}");
}
