//! Files: unreadable and empty files, includes (order, errors in the
//! right file, cycles), relative paths, and syntax-error line numbers.

use super::*;

#[test]
fn unreadable_main_file() {
    let err = super::super::load(Path::new("/nonexistent/nvelox.yaml")).unwrap_err();
    assert_eq!(err.len(), 1);
    assert!(
        err.to_string()
            .starts_with("/nonexistent/nvelox.yaml: cannot read configuration file"),
        "{err}"
    );
}

#[test]
fn empty_file_is_a_valid_empty_plan() {
    let plan = load("# nothing yet\n").unwrap();
    assert!(plan.listeners.is_empty() && plan.backends.is_empty());
}

const INCLUDED: &str = "listeners:\n  - name: extra\n    bind: \"127.0.0.1:7000\"\n    default_backend: pool\nbackends:\n  - name: extra_pool\n    servers: [\"127.0.0.1:7001\"]\n";

#[test]
fn includes_add_listeners_and_backends_in_sorted_order() {
    let tmp = TempDir::new("val-inc");
    tmp.write("conf.d/20-b.yaml", INCLUDED);
    tmp.write(
        "conf.d/10-a.yaml",
        "backends:\n  - name: first\n    servers: [\"127.0.0.1:1\"]\n",
    );
    tmp.write("conf.d/notes.txt", "not yaml: [");
    tmp.write("extra/one.yaml", "# empty\n");
    let main = tmp.write(
        "main.yaml",
        &format!("include: [\"conf.d/*.yaml\", extra/one.yaml]\n{MINIMAL}"),
    );
    let plan = super::load_with(&main, &FakeResolver).unwrap();
    let names: Vec<&str> = plan.backends.iter().map(|b| b.name.as_str()).collect();
    assert_eq!(names, ["pool", "first", "extra_pool"]);
    assert_eq!(plan.listeners[1].name, "extra");
    assert_eq!(plan.listeners[1].backend, Some(BackendId(0)));

    // The string form, and an empty but existing directory.
    std::fs::create_dir_all(tmp.0.join("empty.d")).unwrap();
    let main2 = tmp.write("main2.yaml", &format!("include: empty.d/*.yaml\n{MINIMAL}"));
    assert_eq!(
        super::load_with(&main2, &FakeResolver)
            .unwrap()
            .listeners
            .len(),
        1
    );
}

#[test]
fn include_errors_name_the_right_file() {
    let tmp = TempDir::new("val-inc-err");
    let bad = tmp.write(
        "conf.d/bad.yaml",
        "server:\n  workers: 2\nlisteners:\n  - name: web\n    bind: \"127.0.0.1:8080\"\n    default_backend: nope\n",
    );
    let typo = tmp.write(
        "conf.d/typo.yaml",
        "backends:\n  - name: x\n    sever: []\n",
    );
    let main = tmp.write(
        "main.yaml",
        &format!("include:\n  - conf.d/*.yaml\n  - missing.yaml\n  - nodir/*.yaml\n{MINIMAL}"),
    );
    let errs = super::load_with(&main, &FakeResolver).unwrap_err();
    let text = errs.to_string();
    let main_s = main.display().to_string();
    let bad_s = bad.display().to_string();
    let typo_s = typo.display().to_string();
    let expect = [
        format!("{main_s}:3: include[1]: included file "),
        format!("{main_s}:4: include[2]: include \"nodir/*.yaml\": directory "),
        format!("{bad_s}:1: server: an included file may only add `listeners` and `backends`"),
        format!("{bad_s}:4: listeners[0].name: duplicate listener name \"web\" (first defined at {main_s}:7)"),
        format!("{bad_s}:5: listeners[0].bind: bind 127.0.0.1:8080 overlaps tcp listener \"web\""),
        format!("{bad_s}:6: listeners[0].default_backend: unknown backend \"nope\""),
        format!("{typo_s}:3: backends[0]: unknown field `sever`"),
    ];
    for e in &expect {
        assert!(
            text.lines().any(|l| l.starts_with(e.as_str())),
            "missing {e:?} in:\n{text}"
        );
    }
    assert_eq!(errs.len(), expect.len(), "{text}");
}

#[test]
fn include_cycle_and_nested_include_are_refused() {
    let tmp = TempDir::new("val-inc-cycle");
    let main = tmp.write("main.yaml", &format!("include: \"*.yaml\"\n{MINIMAL}"));
    tmp.write("other.yaml", "include: main.yaml\n");
    let errs = super::load_with(&main, &FakeResolver).unwrap_err();
    let text = errs.to_string();
    assert!(
        text.contains("main.yaml:1: include: include cycle"),
        "{text}"
    );
    assert!(
        text.contains("other.yaml:1: include: an included file may only add"),
        "{text}"
    );
}

#[test]
fn load_str_resolves_includes_next_to_the_named_path() {
    let tmp = TempDir::new("val-inc-str");
    tmp.write("conf.d/x.yaml", INCLUDED);
    let doc = format!("include: conf.d/*.yaml\n{MINIMAL}");
    let plan = load_str_with(&doc, &tmp.0.join("virtual.yaml"), &FakeResolver).unwrap();
    assert_eq!(plan.listeners.len(), 2);
}

#[test]
fn parent_paths() {
    assert_eq!(parent_path("a[1].b"), Some("a[1]"));
    assert_eq!(parent_path("a[1]"), Some("a"));
    assert_eq!(parent_path("a"), Some(""));
    assert_eq!(parent_path(""), None);
}

proptest::proptest! {
    /// Whatever the text, loading returns a plan or errors; it never panics.
    #[test]
    fn load_never_panics(text in "[a-z_0-9:\\- \n\".\\[\\]{}*]{0,200}") {
        let _ = load(&text);
    }

    /// Mutating one value of a valid file gives a plan or located errors.
    #[test]
    fn every_error_names_file_and_path(value in "[a-z0-9:.\\-\\[\\] ]{0,12}", which in 0usize..5) {
        let targets = ["\"127.0.0.1:8080\"", "pool\n", "\"127.0.0.1:9001\"", "name: web", "servers:"];
        let replacement = match which {
            3 => format!("name: web\n    idle_timeout: \"{value}\""),
            4 => format!("balance: \"{value}\"\n    servers:"),
            1 => format!("\"{value}\"\n"),
            _ => format!("\"{value}\""),
        };
        let doc = MINIMAL.replacen(targets[which], &replacement, 1);
        if let Err(errs) = load(&doc) {
            for e in errs.iter() {
                proptest::prop_assert_eq!(&e.file, Path::new("test.yaml"));
                proptest::prop_assert!(e.line.is_some(), "{}", e);
                proptest::prop_assert!(!e.path.is_empty(), "{}", e);
            }
        }
    }
}

/// Fuzzer finding (config target): serde_yaml counts a lone CR as a line
/// break, so a file with CRs inside a line got an error "at line 94" of a
/// 45-line file. Lines are now counted as an editor shows them.
#[test]
fn syntax_error_lines_count_only_newlines() {
    let doc = "listeners:\n  - name: a\r\r\r\r\r\r\r\r\r\r\n    bind: [\n";
    let errs = errors(doc);
    assert_eq!(errs.len(), 1, "{errs:#?}");
    let line = errs[0].line.expect("a syntax error has a line");
    assert!(line <= doc.lines().count() + 1, "line {line}: {}", errs[0]);
    // CRLF files keep the numbers serde_yaml gives (the end of the file
    // here, line 5).
    let crlf = "listeners:\r\n  - name: a\r\n    bind: :80\r\n    oops\r\n";
    let errs = errors(crlf);
    assert_eq!(errs[0].line, Some(5), "{errs:#?}");
    assert!(errs[0].message.contains("at line 5 column 1"), "{errs:#?}");
    // Also with a byte-order mark in front.
    let bom = format!("\u{feff}{crlf}");
    assert_eq!(errors(&bom)[0].line, Some(5));
}
