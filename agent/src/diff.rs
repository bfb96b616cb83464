//! What a command changed in a git work tree, measured rather than reported: files created,
//! files modified, lines added and removed, between the tree at step start and at step end.
//!
//! A snapshot is the work tree written as a git tree object through a throwaway index
//! (`GIT_INDEX_FILE`), so untracked files count and the user's index, branches and history are
//! never touched. Files `.gitignore` ignores are not counted; a binary file counts as a file
//! with no lines.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU64, Ordering};

/// The change between two snapshots.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Change {
    pub files_created: Vec<String>,
    pub files_modified: Vec<String>,
    pub lines_added: u64,
    pub lines_removed: u64,
}

/// A work tree as it was at one moment: a git tree id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Snapshot(String);

fn git(dir: &Path, args: &[&str], index: Option<&Path>) -> Result<String, String> {
    let mut command = Command::new("git");
    command.arg("-C").arg(dir).args(args);
    if let Some(index) = index {
        command.env("GIT_INDEX_FILE", index);
    }
    let output = command.output().map_err(|err| format!("git could not be started: {err}"))?;
    if !output.status.success() {
        return Err(format!("git {} failed: {}", args.join(" "), String::from_utf8_lossy(&output.stderr).trim()));
    }
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}

/// Whether `dir` is inside a git work tree (only then are changes measured).
pub fn is_work_tree(dir: &Path) -> bool {
    git(dir, &["rev-parse", "--is-inside-work-tree"], None).is_ok_and(|out| out.trim() == "true")
}

/// Writes the work tree as it is now into the repository's object store and names it, leaving
/// out paths matching `ignore` (a tool's own files, such as Aider's caches, are not the work).
pub fn snapshot(dir: &Path, ignore: &[&str]) -> Result<Snapshot, String> {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let index: PathBuf = std::env::temp_dir().join(format!(
        "switchyard-agent-index-{}-{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    ));
    let excluded: Vec<String> = ignore.iter().map(|pattern| format!(":(exclude){pattern}")).collect();
    let mut args = vec!["add", "--all", "--", "."];
    args.extend(excluded.iter().map(String::as_str));
    let result = git(dir, &args, Some(&index))
        .and_then(|_| git(dir, &["write-tree"], Some(&index)))
        .map(|tree| Snapshot(tree.trim().to_string()));
    let _ = std::fs::remove_file(&index);
    result
}

/// The change from `before` to `after`.
pub fn between(dir: &Path, before: &Snapshot, after: &Snapshot) -> Result<Change, String> {
    let statuses = git(dir, &["diff", "--no-renames", "--name-status", "-z", &before.0, &after.0], None)?;
    let numstat = git(dir, &["diff", "--no-renames", "--numstat", "-z", &before.0, &after.0], None)?;
    let (files_created, files_modified) = parse_name_status(&statuses);
    let (lines_added, lines_removed) = parse_numstat(&numstat);
    Ok(Change { files_created, files_modified, lines_added, lines_removed })
}

/// `git diff --name-status -z`: a status, NUL, a path, NUL, ... Added files are created,
/// modified and type-changed ones modified; deleted files are neither.
pub fn parse_name_status(text: &str) -> (Vec<String>, Vec<String>) {
    let mut created = Vec::new();
    let mut modified = Vec::new();
    let mut fields = text.split('\0').filter(|f| !f.is_empty());
    while let (Some(status), Some(path)) = (fields.next(), fields.next()) {
        match status.chars().next() {
            Some('A') => created.push(path.to_string()),
            Some('M' | 'T') => modified.push(path.to_string()),
            _ => {}
        }
    }
    (created, modified)
}

/// `git diff --numstat -z`: `added<TAB>removed<TAB>path` records ended by NUL; a binary file
/// shows `-` for both and adds no lines.
pub fn parse_numstat(text: &str) -> (u64, u64) {
    let mut added = 0;
    let mut removed = 0;
    for record in text.split('\0').filter(|r| !r.is_empty()) {
        let mut parts = record.splitn(3, '\t');
        let (Some(a), Some(r)) = (parts.next(), parts.next()) else { continue };
        added += a.parse::<u64>().unwrap_or(0);
        removed += r.parse::<u64>().unwrap_or(0);
    }
    (added, removed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    fn repo() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        for args in
            [vec!["init", "-q"], vec!["config", "user.email", "test@example.com"], vec!["config", "user.name", "Test"]]
        {
            git(dir.path(), &args, None).unwrap();
        }
        fs::write(dir.path().join("kept.txt"), "one\ntwo\nthree\n").unwrap();
        fs::write(dir.path().join("changed.txt"), "a\nb\n").unwrap();
        fs::write(dir.path().join(".gitignore"), "ignored/\n").unwrap();
        git(dir.path(), &["add", "-A"], None).unwrap();
        git(dir.path(), &["commit", "-q", "-m", "start"], None).unwrap();
        dir
    }

    #[test]
    fn created_modified_untracked_and_binary_files_are_measured_against_the_start() {
        let dir = repo();
        let path = dir.path();
        // Uncommitted work from before the step is the baseline, not the step's change.
        fs::write(path.join("changed.txt"), "a\nb\nc\n").unwrap();
        let before = snapshot(path, &[]).unwrap();
        fs::write(path.join("changed.txt"), "a\nB\nc\nd\n").unwrap();
        fs::create_dir_all(path.join("src/new dir")).unwrap();
        fs::write(path.join("src/new dir/fresh file.rs"), "fn main() {}\n// two\n").unwrap();
        fs::write(path.join("logo.png"), [0u8, 159, 146, 150, 0, 1, 2]).unwrap();
        fs::create_dir_all(path.join("ignored")).unwrap();
        fs::write(path.join("ignored/cache"), "x\n").unwrap();
        fs::remove_file(path.join("kept.txt")).unwrap();
        let after = snapshot(path, &[]).unwrap();
        let change = between(path, &before, &after).unwrap();
        assert_eq!(change.files_created, vec!["logo.png", "src/new dir/fresh file.rs"]);
        assert_eq!(change.files_modified, vec!["changed.txt"]);
        assert_eq!((change.lines_added, change.lines_removed), (2 + 2, 1 + 3));
        assert_eq!(
            git(path, &["status", "--porcelain"], None).unwrap().lines().count(),
            4,
            "the user's index is untouched"
        );
    }

    #[test]
    fn a_tools_own_files_are_not_counted_as_the_change() {
        let dir = repo();
        let path = dir.path();
        let before = snapshot(path, &[".aider*"]).unwrap();
        fs::create_dir_all(path.join(".aider.tags.cache.v4")).unwrap();
        fs::write(path.join(".aider.tags.cache.v4/cache.db"), "x\n").unwrap();
        fs::write(path.join("notes.md"), "made\n").unwrap();
        let after = snapshot(path, &[".aider*"]).unwrap();
        assert_eq!(between(path, &before, &after).unwrap().files_created, vec!["notes.md"]);
    }

    #[test]
    fn an_untouched_tree_has_no_change_and_a_plain_directory_is_not_a_work_tree() {
        let dir = repo();
        let before = snapshot(dir.path(), &[]).unwrap();
        let after = snapshot(dir.path(), &[]).unwrap();
        assert_eq!(before, after);
        assert_eq!(between(dir.path(), &before, &after).unwrap(), Change::default());
        let plain = tempfile::tempdir().unwrap();
        assert!(!is_work_tree(plain.path()));
        assert!(is_work_tree(dir.path()));
    }

    #[test]
    fn git_output_is_parsed_with_nul_separated_paths() {
        let (created, modified) = parse_name_status("A\0new file\0M\0old\0D\0gone\0T\0link\0");
        assert_eq!(created, vec!["new file"]);
        assert_eq!(modified, vec!["old", "link"]);
        assert_eq!(parse_numstat("3\t1\ta.rs\0-\t-\timage.png\x0010\t0\tb c.rs\0"), (13, 1));
    }
}
