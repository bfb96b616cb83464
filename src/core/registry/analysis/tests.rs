use super::*;
use crate::core::registry::default_agents::DEFAULT_AGENTS;
use crate::core::registry::instructions;
use crate::core::registry::workflow::{self, Definition, DEFAULT_WORKFLOW_SOURCE};

fn strings(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| s.to_string()).collect()
}

pub(super) fn seed_definition() -> Definition {
    workflow::from_instructions("seed".into(), &instructions::parse(DEFAULT_WORKFLOW_SOURCE).file)
}

pub(super) fn default_capabilities() -> Vec<Vec<String>> {
    DEFAULT_AGENTS.iter().map(|a| strings(a.capabilities)).collect()
}

pub(super) fn seed_profiles(capabilities: &[Vec<String>]) -> Vec<AgentProfile<'_>> {
    DEFAULT_AGENTS
        .iter()
        .zip(capabilities)
        .map(|(a, c)| AgentProfile { name: a.name, description: a.description, capabilities: c })
        .collect()
}

/// Analyses a task as a submission on the default workflow does: routed by its rules.
fn analyze_seed(input: &TaskInput) -> Analysis {
    let (definition, capabilities) = (seed_definition(), default_capabilities());
    let profiles = seed_profiles(&capabilities);
    analyze(input, &definition.routing_input(&profiles))
}

fn run(title: &str, description: &str, requirements: &[&str], paths: &[&str]) -> Analysis {
    let (requirements, paths) = (strings(requirements), strings(paths));
    analyze_seed(&TaskInput { title, description, requirements: &requirements, paths: &paths })
}

/// The specialists the seed's own `<agent_selection>` gives each type: Cloudflare work
/// (backend, and the deployment side of infrastructure) to the second default agent, UI work to
/// the third, both for both.
fn seed_agents(task_type: TaskType) -> Vec<String> {
    let (cloudflare, sveltekit) = (DEFAULT_AGENTS[1].name, DEFAULT_AGENTS[2].name);
    let names: &[&str] = match task_type {
        TaskType::Backend | TaskType::Infrastructure => &[cloudflare],
        TaskType::Frontend => &[sveltekit],
        TaskType::FullStack => &[cloudflare, sveltekit],
    };
    strings(names)
}

/// Analyses a labelled task and checks its type, and what holds for every analysis: agents
/// that follow from the type by the seed's rules, a confidence in range and rounded, at least
/// one reason.
fn check(title: &str, description: &str, requirements: &[&str], paths: &[&str], expected: TaskType) {
    let got = run(title, description, requirements, paths);
    assert_eq!(got.task_type, expected, "{title:?} / {description:?}: {:#?}", got);
    assert_eq!(got.agents, seed_agents(expected), "{title:?}: {:#?}", got.routing);
    assert!((0.0..=1.0).contains(&got.confidence), "{title:?}: {}", got.confidence);
    assert_eq!((got.confidence * 100.0).round() / 100.0, got.confidence, "{title:?}");
    assert!(!got.reasons.is_empty(), "{title:?}");
}

#[test]
fn backend_tasks_go_to_the_cloudflare_specialist() {
    use TaskType::Backend;
    check("Add a comments table to D1 and an endpoint to list comments", "", &[], &[], Backend);
    check("Cache the product list in KV", "Reads are slow; cache them for five minutes.", &[], &[], Backend);
    check("Store uploaded invoices in an R2 bucket", "", &[], &[], Backend);
    check("Process webhooks in the background", "Stripe webhooks should be queued and retried.", &[], &[], Backend);
    check("Add rate limiting to the login API", "", &[], &[], Backend);
    check("Write a migration that adds an index on users.email", "", &[], &[], Backend);
    check("Fix slow database queries", "The orders query scans every row.", &[], &[], Backend);
    check("Harden responses", "Add security headers and a CSP to every response.", &[], &[], Backend);
    check("Nightly cleanup", "Add a cron trigger that deletes expired sessions.", &[], &[], Backend);
    check("Use a Durable Object to count live visitors", "", &[], &[], Backend);
    check("Export orders as CSV", "Add an endpoint for it. No UI changes are needed.", &[], &[], Backend);
    check("Caching for the databases", "Cached responses are invalidated when rows change.", &[], &[], Backend);
    check("Password reset", "Hash passwords with a per-user salt and expire reset tokens.", &[], &[], Backend);
    check("Sessions", "", &["d1", "migrations"], &[], Backend);
    check("Comments", "", &[], &["migrations/0002_comments.sql", "src/lib/server/comments.ts"], Backend);
    check("Bump the API version", "Keep the old endpoint alive; deploy after review.", &[], &[], Backend);
    check("The worker crashes on empty bodies", "", &[], &[], Backend);
}

#[test]
fn frontend_tasks_go_to_the_sveltekit_specialist() {
    use TaskType::Frontend;
    check("Make the settings page keyboard accessible", "", &[], &[], Frontend);
    check("Add a dark mode toggle", "Respect the user's preferred colour scheme.", &[], &[], Frontend);
    check("Restyle the dashboard without touching the database", "", &[], &[], Frontend);
    check("Build a signup form", "Validate it client-side before it is submitted.", &[], &[], Frontend);
    check("Convert the header components to Svelte 5 runes", "", &[], &[], Frontend);
    check("Add breadcrumbs to the docs layout", "", &[], &[], Frontend);
    check("About page", "", &[], &["src/routes/about/+page.svelte", "src/app.css"], Frontend);
    check("Fix the broken link in the navbar", "", &[], &[], Frontend);
    check("Show a spinner while the page data loads", "", &[], &[], Frontend);
    check("Screen reader support for modals", "Add aria labels; trap focus in dialogs.", &[], &[], Frontend);
    check("Nested routing for admin", "Each tab gets its own route and a shared layout.", &[], &[], Frontend);
    check("Make the pricing page responsive on mobile", "", &[], &[], Frontend);
    check("Tweak the styling of buttons", "They look misaligned on Safari; fix the CSS.", &[], &[], Frontend);
    check("Confirm deletes", "Do not change the API or the endpoint, only add a modal.", &[], &[], Frontend);
    check("Polish", "", &["components", "accessibility"], &[], Frontend);
    check("Upgrade to Svelte 5", "", &[], &[], Frontend);
}

#[test]
fn tasks_with_backend_and_frontend_work_are_full_stack() {
    use TaskType::FullStack;
    check("Upload avatars to R2 and show them on the profile page", "", &[], &[], FullStack);
    check("Add a contact form that saves messages to D1", "", &[], &[], FullStack);
    check("Comments", "A comments table, an API route to post them and a Svelte component.", &[], &[], FullStack);
    check("User sessions", "Keep sessions in KV and add a logout button to the header.", &[], &[], FullStack);
    check("Search page backed by a D1 full-text index", "", &[], &[], FullStack);
    check("Image gallery", "Let users upload images and browse them in a grid layout.", &[], &[], FullStack);
    check("Both", "", &["database", "components"], &[], FullStack);
    check("Todos", "", &[], &["src/routes/api/todos/+server.ts", "src/routes/todos/+page.svelte"], FullStack);
    check("Live counters", "Cache the counts in KV and render them on the dashboard.", &[], &[], FullStack);
    check("Add pagination", "A cursor for the list endpoint and next/previous buttons.", &[], &[], FullStack);
    check("Newsletter signup", "A form posts to a webhook that queues a welcome email.", &[], &[], FullStack);
    check("Add a feature flag kept in KV that hides the beta banner", "", &[], &[], FullStack);
    check("Rate-limited feedback form", "", &[], &[], FullStack);
}

#[test]
fn deployment_configuration_and_ci_without_app_work_is_infrastructure() {
    use TaskType::Infrastructure;
    check("Set up GitHub Actions to deploy with wrangler on every push to main", "", &[], &[], Infrastructure);
    check("Point the docs subdomain at Cloudflare", "Add the DNS records.", &[], &[], Infrastructure);
    check("Rotate the Stripe key", "Move the API key to a secret; update CI env vars.", &[], &[], Infrastructure);
    check("Deploying to staging fails", "The pipeline times out on the build step.", &[], &[], Infrastructure);
    check("Add a preview environment for pull requests", "", &[], &[], Infrastructure);
    check("CI", "", &[], &[".github/workflows/deploy.yml", "wrangler.toml"], Infrastructure);
    check("Bump the compatibility date in wrangler.toml", "", &[], &[], Infrastructure);
    check("Containerise the e2e runner", "Write a Dockerfile and a docker compose file.", &[], &[], Infrastructure);
    check("Deploy the worker", "Run wrangler deploy from CI after the tests pass.", &[], &[], Infrastructure);
    check("Set up monitoring and alerts", "Send logs to our stack with Logpush.", &[], &[], Infrastructure);
    check("Move the SvelteKit app to Cloudflare Pages", "", &[], &[], Infrastructure);
    check("Roll back yesterday's release", "", &[], &[], Infrastructure);
    check("Configure SSL certificates for the custom domain", "", &[], &[], Infrastructure);
    check("Upgrade dependencies", "Update package.json and re-run the pipeline.", &[], &[], Infrastructure);
}

#[test]
fn with_nothing_recognisable_every_specialist_is_kept_with_zero_confidence() {
    for (title, description) in [("", ""), ("🚀🚀🚀", "¿qué?"), ("Don't touch the database", ""), ("Zorp", "Blix.")]
    {
        check(title, description, &[], &[], TaskType::FullStack);
        let got = run(title, description, &[], &[]);
        assert_eq!(got.confidence, 0.0, "{title:?}");
        let last = got.reasons.last().map(String::as_str).unwrap_or("");
        assert!(
            last.starts_with("no routing rule matched the task, so every agent the rules assign is kept"),
            "{title:?}: {last}"
        );
    }
    let negated = run("Don't touch the database", "", &[], &[]);
    assert!(negated.reasons.iter().any(|r| r.contains("every term that matched was negated")));
    let nothing = run("Zorp", "Blix.", &[], &[]);
    assert!(nothing.reasons.iter().any(|r| r.starts_with("nothing in the title")));
    assert!(nothing.evidence.is_empty());
}

#[test]
fn with_no_vocabulary_evidence_the_words_decide_when_they_lean_however_short_the_task() {
    for title in ["Fix the typo in the README", "Tidy up"] {
        let got = run(title, "", &[], &[]);
        assert!(got.evidence.is_empty(), "{title:?}: {:?}", got.evidence);
        let words = got.words.as_ref().expect("a reading");
        assert!(words.decided && words.task_type == got.task_type && words.margin > 1.0, "{title:?}: {words:?}");
        let reason = got.reasons.iter().find(|r| r.starts_with("the vocabulary found no evidence; the words"));
        assert!(reason.is_some(), "{title:?}: {:?}", got.reasons);
        assert!(got.confidence > 0.0 && got.confidence < 1.0, "{title:?}: {}", got.confidence);
    }
}

#[test]
fn analysing_the_same_task_twice_gives_the_same_answer() {
    let requirements = strings(&["d1", "form actions"]);
    let paths = strings(&["src/routes/+page.svelte", "wrangler.toml"]);
    let input = TaskInput {
        title: "Comments with KV caching",
        description: "Without touching R2, add a table and a modal; deploy to staging.",
        requirements: &requirements,
        paths: &paths,
    };
    let (first, second) = (analyze_seed(&input), analyze_seed(&input));
    assert_eq!(first, second);
    assert_eq!(serde_json::to_string(&first).ok(), serde_json::to_string(&second).ok());
}

#[test]
fn evidence_is_listed_by_source_then_position() {
    let got = run(
        "Add a modal",
        "Store the file in R2, then cache it in KV.",
        &["svelte"],
        &["migrations/0001.sql", "README.md"],
    );
    let listed: Vec<(Source, &str, &str)> =
        got.evidence.iter().map(|e| (e.source, e.term.as_str(), e.matched.as_str())).collect();
    assert_eq!(
        listed,
        [
            (Source::Title, "component", "modal"),
            (Source::Description, "r2", "R2"),
            (Source::Description, "kv", "cache"),
            (Source::Description, "kv", "KV"),
            (Source::Requirement, "svelte", "svelte"),
            (Source::Path, "d1", "migrations/0001.sql"),
        ]
    );
}

#[test]
fn word_forms_phrases_and_synonyms_name_their_canonical_terms() {
    fn terms(text: &str) -> Vec<(String, String)> {
        run(text, "", &[], &[]).evidence.into_iter().map(|e| (e.term, e.matched)).collect()
    }
    let pair = |t: &str, m: &str| (t.to_string(), m.to_string());
    assert_eq!(terms("Databases"), [pair("d1", "Databases")]);
    assert_eq!(terms("caching"), [pair("kv", "caching")]);
    assert_eq!(terms("cached"), [pair("kv", "cached")]);
    assert_eq!(terms("migrations"), [pair("d1", "migrations")]);
    assert_eq!(terms("queries"), [pair("d1", "queries")]);
    assert_eq!(terms("deploying"), [pair("deployment", "deploying")]);
    assert_eq!(terms("forms"), [pair("form", "forms")]);
    assert_eq!(terms("forming"), []);
    assert_eq!(terms("paging"), []);
    assert_eq!(terms("rate-limiting"), [pair("rate-limiting", "rate-limiting")]);
    assert_eq!(terms("Form Actions"), [pair("form", "Form Actions")]);
    assert_eq!(terms("load functions"), [pair("load-function", "load functions")]);
    assert_eq!(terms("an API key"), [pair("secrets", "API key")]);
    assert_eq!(terms("a service worker"), [pair("pwa", "service worker")]);
    assert_eq!(terms("object storage"), [pair("r2", "object storage")]);
    assert_eq!(terms("the data table"), [pair("component", "data table")]);
    assert_eq!(terms("edit `wrangler.toml`."), [pair("wrangler", "wrangler.toml")]);
    assert_eq!(terms("(src/routes/+page.svelte)"), [pair("page", "src/routes/+page.svelte")]);
    assert_eq!(terms("D1/KV"), [pair("d1", "D1"), pair("kv", "KV")]);
    assert_eq!(terms("database. Schema"), [pair("d1", "database"), pair("d1", "Schema")]);
    assert_eq!(terms("a table with a column"), [pair("table", "table"), pair("table", "column")]);
    assert_eq!(terms("CI/CD pipeline"), [pair("ci", "CI/CD"), pair("ci", "pipeline")]);
    assert_eq!(terms("edit .github/workflows/ci.yml, then"), [pair("ci", ".github/workflows/ci.yml")]);
    assert_eq!(terms("\"./.dev.vars\"!"), [pair("secrets", "./.dev.vars")]);
}

#[test]
fn negated_terms_are_listed_but_do_not_count() {
    fn negations(text: &str) -> Vec<(String, bool)> {
        run(text, "", &[], &[]).evidence.into_iter().map(|e| (e.matched, e.negated)).collect()
    }
    let n = |m: &str, negated: bool| (m.to_string(), negated);
    assert_eq!(negations("Restyle it without touching the database"), [n("Restyle", false), n("database", true)]);
    assert_eq!(
        negations("no database changes, restyle the page"),
        [n("database", true), n("restyle", false), n("page", false)]
    );
    assert_eq!(negations("without the database, KV or R2"), [n("database", true), n("KV", true), n("R2", true)]);
    assert_eq!(negations("don't touch the API but add a modal"), [n("API", true), n("modal", false)]);
    assert_eq!(negations("use KV instead of D1"), [n("KV", false), n("D1", true)]);
    assert_eq!(negations("do not change the database and add a page"), [n("database", true), n("page", false)]);
    assert_eq!(negations("not. database"), [n("database", false)]);
    assert_eq!(negations("not one two three four database"), [n("database", false)]);
    assert_eq!(negations("add a skip link to the page"), [n("skip link", false), n("page", false)]);
    assert_eq!(negations("the database is not involved"), [n("database", false)]);
    let got = run("Restyle the dashboard without touching the database", "", &[], &[]);
    let reason = got.reasons.iter().find(|r| r.contains("D1")).cloned().unwrap_or_default();
    assert_eq!(reason, "mentions D1 (database) in the title after \"without\", so it does not count");
}

#[test]
fn paths_are_classified_by_the_first_rule_that_applies() {
    fn check_path(path: &str, expected: Option<&str>) {
        assert_eq!(classify_path(path).map(|c| c.term), expected, "{path}");
    }
    check_path("src/routes/+page.svelte", Some("page"));
    check_path("src/routes/blog/[slug]/+page.server.ts", Some("page"));
    check_path("src/routes/+layout.svelte", Some("page"));
    check_path("src/lib/components/Button.svelte", Some("component"));
    check_path("src/app.css", Some("styling"));
    check_path("tailwind.config.js", Some("styling"));
    check_path("src/routes/blog/utils.ts", Some("routing"));
    check_path("src/app.html", Some("page"));
    check_path("src/routes/api/users/+server.ts", Some("api"));
    check_path("src/routes/feed.xml/+server.ts", Some("api"));
    check_path("migrations/0001_init.sql", Some("d1"));
    check_path("db/schema.sql", Some("d1"));
    check_path("src/lib/server/db.ts", Some("server-code"));
    check_path("src/hooks.server.ts", Some("server-code"));
    check_path("src/worker.ts", Some("server-code"));
    check_path("src/core/analysis.rs", Some("server-code"));
    check_path("wrangler.toml", Some("wrangler"));
    check_path("./wrangler.jsonc", Some("wrangler"));
    check_path(".github/workflows/deploy.yml", Some("ci"));
    check_path(".gitlab-ci.yml", Some("ci"));
    check_path("Dockerfile", Some("containers"));
    check_path("docker-compose.yaml", Some("containers"));
    check_path(".dev.vars", Some("secrets"));
    check_path(".env.production", Some("secrets"));
    check_path("package.json", Some("config"));
    check_path("infra/main.tf", Some("config"));
    check_path("SRC\\ROUTES\\+PAGE.SVELTE", Some("page"));
    check_path("README.md", None);
    check_path("src/lib/util.ts", None);
    check_path("static/favicon.png", None);
    check_path("", None);
    check_path("///", None);
}

#[test]
fn confidence_grows_with_evidence_and_falls_with_mixed_signals() {
    let confidence = |title: &str| run(title, "", &[], &[]).confidence;
    assert_eq!(confidence("a D1 migration"), 0.75);
    assert_eq!(confidence("a D1 table"), 0.65);
    assert_eq!(confidence("D1"), 0.5);
    assert_eq!(confidence("D1 KV R2"), 0.88);
    assert_eq!(confidence("D1 D1 D1"), 0.5);
    assert_eq!(confidence("D1 and deploy"), 0.33);
    assert_eq!(confidence("D1 and a modal"), 0.5);
    assert_eq!(confidence("fix the worker"), 0.29);
    assert_eq!(confidence("deploy the worker with wrangler"), 0.6);
    assert_eq!(confidence("nothing here"), 0.0);
    assert!(confidence("D1 KV R2 queues cron") > confidence("D1 KV R2"));
}

#[test]
fn reasons_name_the_evidence_and_the_rules_that_fired() {
    let got = run("Deploy", "Add a D1 (database) table", &[], &["src/routes/+page.svelte"]);
    assert_eq!(
        got.reasons,
        [
            "mentions deployment in the title, which is infrastructure and outweighed by the application work",
            "mentions D1 (database) in the description → backend work",
            "lists the path src/routes/+page.svelte (a SvelteKit page or layout) → frontend work",
            "infrastructure terms matched too; when a task also has backend or frontend work, that work decides \
             the type",
            "backend and frontend work both matched → full-stack",
            "line 39: IF the task uses Cloudflare services (D1, KV, R2, Queues) fired (D1 in the description is D1 \
             (database), which the condition names) → cloudflare-specialist",
            "line 41: IF the task changes pages, components or routes fired (src/routes/+page.svelte in the paths is \
             pages and layouts, which the condition names) → sveltekit-specialist",
            "line 43: IF the task does both fired (the rules at line 39 and line 41 fired) → cloudflare-specialist \
             and sveltekit-specialist",
        ]
    );
    let general = run("Fix the worker", "", &[], &[]);
    assert!(general.reasons.iter().any(|r| r.contains("only general terms matched")), "{:?}", general.reasons);
}

#[test]
fn analysis_serialises_with_the_documented_names() {
    let got = run("Deploy", "", &[], &[]);
    let json = serde_json::to_value(&got).unwrap_or_default();
    assert_eq!(json["task_type"], "infrastructure");
    assert_eq!(json["evidence"][0]["area"], "infrastructure");
    assert_eq!(json["evidence"][0]["source"], "title");
    assert_eq!(json["evidence"][0]["negated"], false);
    for (task_type, name) in [
        (TaskType::Frontend, "\"frontend\""),
        (TaskType::Backend, "\"backend\""),
        (TaskType::FullStack, "\"full-stack\""),
        (TaskType::Infrastructure, "\"infrastructure\""),
    ] {
        assert_eq!(serde_json::to_string(&task_type).ok().as_deref(), Some(name));
        assert_eq!(serde_json::from_str::<TaskType>(name).ok(), Some(task_type));
    }
}

#[test]
fn every_phrase_names_a_known_term_and_is_written_in_base_form_words() {
    let mut seen = BTreeSet::new();
    let mut count = 0;
    for (phrase, id) in VOCABULARY.iter().flat_map(|&(id, phrases)| phrases.iter().map(move |&p| (p, id))) {
        count += 1;
        assert!(find_term(id).is_some(), "{phrase}: unknown term {id}");
        assert!(seen.insert(phrase), "{phrase} is listed twice");
        for word in phrase.split(' ') {
            let word = word.strip_prefix('=').unwrap_or(word);
            assert!(
                !word.is_empty() && word.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit()),
                "{phrase:?}"
            );
        }
    }
    let mut ids = BTreeSet::new();
    for term in TERMS {
        assert!(ids.insert(term.id), "{} is listed twice", term.id);
        assert!(VOCABULARY.iter().any(|&(id, _)| id == term.id) || term.id == "server-code", "{} is unused", term.id);
    }
    assert_eq!(Lexicon::new().phrases.len(), count);
}

#[test]
fn word_forms_are_recognised_without_a_stemmer() {
    let forms = [
        ("cache", "caches", true),
        ("cache", "caching", true),
        ("cache", "cached", true),
        ("deploy", "deploys", true),
        ("deploy", "deployed", true),
        ("query", "queries", true),
        ("query", "queried", true),
        ("map", "mapping", true),
        ("map", "mapped", true),
        ("address", "addresses", true),
        ("style", "styling", true),
        ("d1", "d1", true),
        ("cache", "cachet", false),
        ("page", "pages", true),
        ("api", "apis", true),
        ("kv", "kvx", false),
        ("a", "as", false),
        ("", "s", false),
    ];
    for (base, word, expected) in forms {
        assert_eq!(is_form_of(word, base), expected, "{word} of {base}");
    }
    assert!(is_plural_of("tables", "table") && !is_plural_of("tabled", "table"));
}

#[test]
fn huge_and_strange_inputs_stay_bounded_and_never_panic() {
    let megabyte = "Add a D1 table, a KV cache and a modal without R2. ".repeat(20_000);
    let got = run("Big", &megabyte, &[], &[]);
    assert_eq!(got.task_type, TaskType::FullStack);
    assert!(got.evidence.len() <= EVIDENCE_MAX);
    assert!(got.reasons.len() < 100);

    let one_word = "d".repeat(1 << 20);
    let got = run(&one_word, &one_word, &[one_word.as_str()], &[one_word.as_str()]);
    assert_eq!(got.confidence, 0.0);

    let many: Vec<String> = (0..10_000).map(|i| format!("d1 requirement {i}")).collect();
    let paths: Vec<String> = (0..10_000).map(|i| format!("src/routes/p{i}/+page.svelte")).collect();
    let got = analyze_seed(&TaskInput { title: "", description: "", requirements: &many, paths: &paths });
    assert_eq!(got.task_type, TaskType::FullStack);
    assert_eq!(got.evidence.len(), EVIDENCE_MAX);
    assert!(got.reasons.iter().any(|r| r.contains("the first 64 are listed")));

    let words = "d1 ".repeat(400_000);
    let got = run(&words, &words, &[], &[]);
    assert_eq!(got.evidence.len(), 2);

    for text in ["İİİİ d1", "don'", "'''", "...", "+", "+.", "a/b/c/d/", "\u{0301}d1", "no", "not not not"] {
        let got = run(text, text, &[text], &[text]);
        assert!((0.0..=1.0).contains(&got.confidence), "{text:?}");
    }
    let multibyte = "é".repeat(ANALYSIS_TEXT_BYTES_MAX);
    assert!(head(&multibyte, ANALYSIS_TEXT_BYTES_MAX - 1).len() < ANALYSIS_TEXT_BYTES_MAX);
}

// Selection.

fn default_profiles() -> (Vec<Vec<String>>, Vec<(&'static str, &'static str)>) {
    let capabilities = DEFAULT_AGENTS.iter().map(|a| strings(a.capabilities)).collect();
    let names = DEFAULT_AGENTS.iter().map(|a| (a.name, a.description)).collect();
    (capabilities, names)
}

fn select_defaults(requirements: &[&str]) -> Selection {
    let (capabilities, names) = default_profiles();
    let profiles: Vec<AgentProfile> = names
        .iter()
        .zip(&capabilities)
        .map(|(&(name, description), capabilities)| AgentProfile { name, description, capabilities })
        .collect();
    select(&strings(requirements), &profiles)
}

fn check_select(requirements: &[&str], expected: Option<&str>) {
    let got = select_defaults(requirements);
    assert_eq!(got.agent.as_deref(), expected, "{requirements:?}: {:#?}", got.candidates);
}

#[test]
fn auto_select_picks_the_agent_whose_capabilities_fit_best() {
    check_select(&["database", "d1", "migrations"], Some("cloudflare-specialist"));
    check_select(&["component", "svelte", "accessibility"], Some("sveltekit-specialist"));
    check_select(&["Database", " D1 ", "MIGRATIONS"], Some("cloudflare-specialist"));
    check_select(&["bucket"], Some("cloudflare-specialist"));
    check_select(&["sql query"], Some("cloudflare-specialist"));
    check_select(&["form-actions", "runes"], Some("sveltekit-specialist"));
    check_select(&["vitest", "e2e"], Some("test-runner"));
    check_select(&["unit tests", "coverage"], Some("test-runner"));
    check_select(&["checklist", "integration"], Some("project-manager"));
    check_select(&["codebase", "documentation lookup"], Some("context-fetcher"));
    check_select(&["caching"], Some("cloudflare-specialist"));
    check_select(&["cache"], Some("cloudflare-specialist"));
    check_select(&["quantum entanglement"], None);
    check_select(&[], None);
    check_select(&["", "   ", "\t\n"], None);
}

#[test]
fn the_seed_examples_score_every_requirement_as_an_exact_match() {
    let got = select_defaults(&["database", "d1", "migrations"]);
    assert_eq!(
        got.candidates.first().map(|c| (c.score, c.matched.clone())),
        Some((30, strings(&["database", "d1", "migrations"])))
    );
    let got = select_defaults(&["component", "svelte", "accessibility"]);
    assert_eq!(got.candidates.first().map(|c| c.score), Some(30));
}

#[test]
fn matched_lists_the_contributing_requirements_in_order_once() {
    let got = select_defaults(&["d1", "svelte", "  kv  ", "d1", "quantum"]);
    let listed: Vec<(&str, Vec<String>)> =
        got.candidates.iter().map(|c| (c.agent.as_str(), c.matched.clone())).collect();
    assert_eq!(
        listed,
        [("cloudflare-specialist", strings(&["d1", "kv"])), ("sveltekit-specialist", strings(&["svelte"]))]
    );
}

#[test]
fn match_kinds_score_exact_then_related_then_partial_then_description() {
    fn score(requirement: &str, capability: &str, description: &str) -> u32 {
        let capabilities = strings(&[capability]);
        let agents = [AgentProfile { name: "a", description, capabilities: &capabilities }];
        select(&strings(&[requirement]), &agents).candidates.first().map_or(0, |c| c.score)
    }
    assert_eq!(score("components", "component", ""), SCORE_EXACT);
    assert_eq!(score("Form Actions", "form-actions", ""), SCORE_EXACT);
    assert_eq!(score("queries", "query", ""), SCORE_EXACT);
    assert_eq!(score("caching", "cache", ""), SCORE_RELATED);
    assert_eq!(score("bucket", "r2", ""), SCORE_RELATED);
    assert_eq!(score("migration", "database", ""), SCORE_RELATED);
    assert_eq!(score("unit", "unit tests", ""), SCORE_PARTIAL);
    assert_eq!(score("component", "component tests", ""), SCORE_PARTIAL);
    assert_eq!(score("dark mode", "mobile responsiveness", ""), 0);
    assert_eq!(score("emails", "sms", "Sends email and text messages."), SCORE_DESCRIPTION);
    assert_eq!(score("the", "sms", "the one"), 0);
    assert_eq!(score("emails", "sms", ""), 0);
}

#[test]
fn ties_go_to_the_name_that_sorts_first() {
    let capabilities = strings(&["x-ray"]);
    let agents = [
        AgentProfile { name: "zeta", description: "", capabilities: &capabilities },
        AgentProfile { name: "alpha", description: "", capabilities: &capabilities },
        AgentProfile { name: "mid", description: "", capabilities: &[] },
    ];
    let got = select(&strings(&["X-Ray"]), &agents);
    assert_eq!(got.agent.as_deref(), Some("alpha"));
    let order: Vec<&str> = got.candidates.iter().map(|c| c.agent.as_str()).collect();
    assert_eq!(order, ["alpha", "zeta"]);
}

#[test]
fn selection_stays_bounded_on_huge_input() {
    let capabilities: Vec<String> = (0..1_000).map(|i| format!("capability {i}")).collect();
    let names: Vec<String> = (0..1_000).map(|i| format!("agent-{i:04}")).collect();
    let description = "word ".repeat(200_000);
    let agents: Vec<AgentProfile> = names
        .iter()
        .map(|name| AgentProfile { name, description: &description, capabilities: &capabilities })
        .collect();
    let requirements: Vec<String> = (0..10_000).map(|i| format!("capability {i}")).collect();
    let got = select(&requirements, &agents);
    assert_eq!(got.candidates.len(), SELECT_AGENTS_MAX);
    assert_eq!(got.agent.as_deref(), Some("agent-0000"));
    let huge = "x".repeat(1 << 20);
    let got = select(
        std::slice::from_ref(&huge),
        &[AgentProfile { name: "a", description: &huge, capabilities: std::slice::from_ref(&huge) }],
    );
    assert_eq!(
        got.agent, None,
        "a requirement is read up to {TASK_REQUIREMENT_BYTES_MAX} bytes, a capability to {AGENT_CAPABILITY_BYTES_MAX}"
    );
}

/// A labelled task of `tests/fixtures/analysis/`.
#[derive(serde::Deserialize)]
struct Labelled {
    title: String,
    description: String,
    #[serde(default)]
    paths: Vec<String>,
    #[serde(rename = "type")]
    expected: TaskType,
}

/// Per type: (right, all), in the order frontend, backend, full-stack, infrastructure; and the
/// cases analysis got wrong.
fn accuracy(cases: &[Labelled]) -> ([(u32, u32); 4], Vec<String>) {
    let mut tally = [(0, 0); 4];
    let mut wrong = Vec::new();
    for case in cases {
        let got = run(&case.title, &case.description, &[], &case.paths.iter().map(String::as_str).collect::<Vec<_>>());
        let slot = match case.expected {
            TaskType::Frontend => 0,
            TaskType::Backend => 1,
            TaskType::FullStack => 2,
            TaskType::Infrastructure => 3,
        };
        tally[slot].1 += 1;
        if got.task_type == case.expected {
            tally[slot].0 += 1;
        } else {
            wrong.push(format!("{:?} → {:?}: {} / {}", case.expected, got.task_type, case.title, case.description));
        }
    }
    (tally, wrong)
}

/// The labelled tasks analysis is tuned on (`tests/fixtures/analysis/tuning*.json`). The
/// held-back sets beside them are never read here: `npm run bench` measures them.
const TUNING_SETS: [&str; 12] = [
    include_str!("../../../../tests/fixtures/analysis/tuning.json"),
    include_str!("../../../../tests/fixtures/analysis/tuning-2.json"),
    include_str!("../../../../tests/fixtures/analysis/tuning-3.json"),
    include_str!("../../../../tests/fixtures/analysis/tuning-4.json"),
    include_str!("../../../../tests/fixtures/analysis/tuning-5.json"),
    include_str!("../../../../tests/fixtures/analysis/tuning-6.json"),
    include_str!("../../../../tests/fixtures/analysis/tuning-7.json"),
    include_str!("../../../../tests/fixtures/analysis/tuning-8.json"),
    include_str!("../../../../tests/fixtures/analysis/tuning-9.json"),
    include_str!("../../../../tests/fixtures/analysis/tuning-10.json"),
    include_str!("../../../../tests/fixtures/analysis/tuning-11.json"),
    include_str!("../../../../tests/fixtures/analysis/tuning-12.json"),
];

#[test]
fn nine_in_ten_tuning_tasks_get_their_type_and_no_type_falls_below_85_percent() {
    let cases: Vec<Labelled> =
        TUNING_SETS.iter().flat_map(|set| serde_json::from_str::<Vec<Labelled>>(set).unwrap()).collect();
    let (tally, wrong) = accuracy(&cases);
    let (right, all) = tally.iter().fold((0, 0), |(r, a), (right, all)| (r + right, a + all));
    assert!(right * 10 >= all * 9, "{right}/{all} {tally:?}\n{}", wrong.join("\n"));
    for (right, all) in tally {
        assert!(right * 100 >= all * 85, "{tally:?}\n{}", wrong.join("\n"));
    }
}

// ---------------------------------------------------------------------------------------------
// Routing.

/// A team of specialists other than the seed's, with its own `<agent_selection>`.
const TEAM_FLOW: &str = r#"# Team flow
<process_flow>
<step number="1" name="analyse">
Say what the task needs.
<agent_selection>
  IF task involves Python services:
    ASSIGN: python-specialist
  IF task touches API endpoints or the database:
    ASSIGN: api-engineer
  IF task changes the UI:
    ASSIGN: ui-engineer
  IF task involves both:
    ASSIGN: both specialists in parallel
</agent_selection>
</step>
<parallel_execution optional="true">
<step number="2a" subagent="python-specialist" name="python">Python.</step>
<step number="2b" subagent="api-engineer" name="api">API.</step>
<step number="2c" subagent="ui-engineer" name="ui">UI.</step>
</parallel_execution>
<step number="3" subagent="reviewer" name="review">Review.</step>
</process_flow>
"#;

/// Capabilities of the team's agents, by name.
const TEAM: &[(&str, &[&str])] = &[
    ("python-specialist", &["python", "fastapi", "pandas"]),
    ("api-engineer", &["api", "endpoints", "database", "sql"]),
    ("ui-engineer", &["components", "pages", "css"]),
    ("rust-specialist", &["rust", "cargo", "wasm"]),
    ("reviewer", &["review"]),
];

fn routed(flow: &str, title: &str) -> Analysis {
    let parsed = instructions::parse(flow);
    assert!(!parsed.has_errors(), "{:?}", parsed.problems);
    let definition = workflow::from_instructions("team".into(), &parsed.file);
    let capabilities: Vec<Vec<String>> = TEAM.iter().map(|(_, c)| strings(c)).collect();
    let profiles: Vec<AgentProfile> = TEAM
        .iter()
        .zip(&capabilities)
        .map(|((name, _), capabilities)| AgentProfile { name, description: "", capabilities })
        .collect();
    analyze(&TaskInput { title, description: "", requirements: &[], paths: &[] }, &definition.routing_input(&profiles))
}

#[test]
fn a_files_own_rules_route_to_its_own_specialists() {
    let cases: &[(&str, &[&str], &[u32])] = &[
        ("Add a Python service that scores invoices", &["python-specialist"], &[6]),
        ("Add an endpoint that lists invoices", &["api-engineer"], &[8]),
        ("Store invoices in the database", &["api-engineer"], &[8]),
        ("Restyle the invoice page buttons", &["ui-engineer"], &[10]),
        ("An endpoint for invoices and a page that lists them", &["api-engineer", "ui-engineer"], &[8, 10, 12]),
        ("Without any Python: add an endpoint for invoices", &["api-engineer"], &[8]),
        ("Tidy up", &["python-specialist", "api-engineer", "ui-engineer"], &[]),
    ];
    for &(title, agents, fired) in cases {
        let got = routed(TEAM_FLOW, title);
        assert_eq!(got.agents, strings(agents), "{title}: {:#?}", got.routing);
        let lines: Vec<u32> = got.routing.rules.iter().filter(|r| r.fired).filter_map(|r| r.line).collect();
        assert_eq!(lines, fired, "{title}: {:#?}", got.routing);
        assert_eq!(got.routing.by, "agent_selection");
        assert_eq!(got.routing.candidates, strings(&["python-specialist", "api-engineer", "ui-engineer"]));
    }
}

#[test]
fn a_rule_that_fired_shows_its_evidence() {
    let got = routed(TEAM_FLOW, "Add a Python service that scores invoices");
    let python = &got.routing.rules[0];
    assert_eq!((python.fired, python.on), (true, Some("evidence")));
    assert_eq!(python.evidence, ["\"python\" in the title matches the word python"]);
    let both = routed(TEAM_FLOW, "An endpoint for invoices and a page that lists them");
    let combined = &both.routing.rules[3];
    assert_eq!(combined.on, Some("others"));
    assert_eq!(combined.evidence, ["the rules at line 8 and line 10 fired"]);
    assert_eq!(combined.agents, strings(&["api-engineer", "ui-engineer"]));
    assert!(both.reasons.iter().any(|r| r.starts_with("line 8: IF task touches API endpoints or the database fired")));
}

#[test]
fn without_rules_the_capabilities_of_the_optional_steps_agents_decide() {
    let flow = r#"# Ports
<process_flow>
<step number="1" subagent="reviewer" name="look">Look.</step>
<parallel_execution optional="true">
<step number="2a" subagent="python-specialist" name="python">Python.</step>
<step number="2b" subagent="rust-specialist" name="rust">Rust.</step>
</parallel_execution>
</process_flow>
"#;
    let cases: &[(&str, &[&str])] = &[
        ("Rewrite the parser in Rust", &["rust-specialist"]),
        ("Speed up the pandas import", &["python-specialist"]),
        ("Build the Rust core to wasm and call it from Python", &["python-specialist", "rust-specialist"]),
        ("Tidy up", &["python-specialist", "rust-specialist"]),
    ];
    for &(title, agents) in cases {
        let got = routed(flow, title);
        assert_eq!(got.routing.by, "capabilities");
        assert_eq!(got.agents, strings(agents), "{title}: {:#?}", got.routing);
    }
}

#[test]
fn combination_conditions_refer_to_the_other_rules() {
    for (condition, combination) in [
        ("task involves both", true),
        ("the task does both", true),
        ("all of the above", true),
        ("both the API and the UI", false),
        ("task involves Python services", false),
    ] {
        assert_eq!(routing::is_combination(condition), combination, "{condition}");
    }
}

#[test]
fn every_feature_of_the_word_table_is_found_with_its_own_weights() {
    use super::words::{weight_in, WORD_WEIGHTS};
    let lines: Vec<&str> = WORD_WEIGHTS.lines().collect();
    assert!(lines.len() > 1000, "{} lines", lines.len());
    assert!(lines.windows(2).all(|pair| pair[0].split('\t').next() < pair[1].split('\t').next()), "not sorted");
    for line in lines {
        let (feature, row) = line.split_once('\t').unwrap();
        let expected: Vec<i16> = row.split(' ').map(|w| w.parse().unwrap()).collect();
        assert_eq!(weight_in(WORD_WEIGHTS, feature).map(Vec::from), Some(expected), "{feature}");
    }
}

#[test]
fn a_feature_missing_from_the_word_table_has_no_weights_wherever_it_would_sort() {
    use super::words::weight_in;
    let table = "b\t1 2 3 4\nd\t-5 6 -7 8\nf\t9 10 11 12\n";
    assert_eq!(weight_in(table, "d"), Some([-5, 6, -7, 8]));
    assert_eq!(weight_in(table, "f"), Some([9, 10, 11, 12]));
    for missing in ["", "a", "c", "e", "g", "b\t1", "dd"] {
        assert_eq!(weight_in(table, missing), None, "{missing:?}");
    }
    assert_eq!(weight_in("", "a"), None);
    // A row that is not four numbers is no row: never a panic, never made-up weights.
    assert_eq!(weight_in("a\t1 2 3\n", "a"), None);
    assert_eq!(weight_in("a\t1 2 3 4 5\n", "a"), None);
    assert_eq!(weight_in("a\t1 2 x 4\n", "a"), None);
    assert_eq!(weight_in("a 1 2 3 4\n", "a"), None);
}

#[test]
fn the_word_weights_are_the_ones_the_tuning_sets_train() {
    use super::words::training::{render, train, Example};
    let cases: Vec<Labelled> =
        TUNING_SETS.iter().flat_map(|set| serde_json::from_str::<Vec<Labelled>>(set).unwrap()).collect();
    let examples: Vec<Example> = cases
        .iter()
        .map(|c| Example {
            title: &c.title,
            description: &c.description,
            paths: &c.paths,
            terms: super::terms_of(&TaskInput {
                title: &c.title,
                description: &c.description,
                requirements: &[],
                paths: &c.paths,
            }),
            task_type: c.expected,
        })
        .collect();
    let text = render(&train(&examples));
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/src/core/registry/analysis/word_weights.rs");
    if std::env::var_os("WRITE_WORD_WEIGHTS").is_some() {
        std::fs::write(path, &text).unwrap();
        return;
    }
    assert!(
        text == include_str!("word_weights.rs"),
        "word_weights.rs is not what the tuning sets train: run `npm run train-analysis`"
    );
}

// ---------------------------------------------------------------------------------------------
// The word model.

#[test]
fn the_word_model_reads_words_no_negation_governs_title_words_path_segments_and_terms() {
    let paths = strings(&["src/routes/+page.svelte"]);
    let features = super::words::features("Fix the modal", "Do not change the API. Keep it small", &paths, &["modal"]);
    let kept = ["fix", "modal", "keep", "small", "title:fix", "title:modal", "path:routes", "path:page", "term:modal"];
    for kept in kept {
        assert!(features.contains(&kept.to_string()), "{kept}: {features:?}");
    }
    for dropped in ["not", "change", "api", "title:keep"] {
        assert!(!features.contains(&dropped.to_string()), "{dropped}: {features:?}");
    }
    assert_eq!(super::words::read(strings(&["zzqx"])), None, "no known word, no reading");
}

#[test]
fn clear_words_overrule_thin_vocabulary_evidence_and_the_reasons_say_so() {
    let got = run(
        "Turn on DNSSEC",
        "A pen test lists DNSSEC as disabled on acme.io. Enable it and add the DS record at the registrar.",
        &[],
        &[],
    );
    assert_eq!(got.task_type, TaskType::Infrastructure, "{got:#?}");
    let words = got.words.as_ref().expect("a reading");
    assert!(words.decided && words.task_type == TaskType::Infrastructure && words.margin > 4.0, "{words:?}");
    assert!(!words.words.is_empty() && words.words.iter().all(|w| w.len() > 2), "{words:?}");
    let reason =
        got.reasons.iter().find(|r| r.starts_with("the vocabulary found no evidence; the words")).expect("a reason");
    assert!(reason.ends_with("→ infrastructure"), "{reason}");
    assert!(got.confidence > 0.0 && got.confidence < 1.0, "{}", got.confidence);
    assert_eq!(
        got.agents,
        seed_agents(TaskType::Infrastructure),
        "routing follows the words' type: {:#?}",
        got.routing
    );
}

#[test]
fn the_words_overrule_only_another_type_by_a_clear_lead_over_thin_evidence_on_enough_words() {
    use super::words::WordReading;
    use TaskType::{Backend, FullStack, Infrastructure};
    // Scores per type: frontend, backend, full-stack, infrastructure.
    let reading =
        |task_type, scores, known_words| WordReading { task_type, margin: 1.0, scores, words: Vec::new(), known_words };
    let cases: &[(WordReading, TaskType, f64, bool)] = &[
        (reading(Infrastructure, [-9.0, 0.0, -3.0, 5.0], 15), Backend, 0.5, true),
        (reading(Infrastructure, [-9.0, 0.0, -3.0, 5.0], 15), Backend, 0.88, true),
        (reading(Infrastructure, [-9.0, 0.0, -3.0, 5.0], 15), Backend, 0.89, false),
        (reading(Infrastructure, [-9.0, 0.0, -3.0, 5.0], 14), Backend, 0.5, false),
        (reading(Infrastructure, [-9.0, 0.0, -3.0, 5.0], 3), Backend, 0.0, true),
        (reading(Infrastructure, [-9.0, 0.0, 4.5, 5.0], 30), FullStack, 0.0, false),
        (reading(Infrastructure, [-9.0, 0.0, 4.0, 5.0], 30), FullStack, 0.0, false),
        (reading(Infrastructure, [-9.0, 0.0, 3.9, 5.0], 30), FullStack, 0.0, true),
        (reading(Backend, [-9.0, 8.0, -3.0, 5.0], 30), Backend, 0.1, false),
    ];
    for (reading, vocabulary_type, confidence, expected) in cases {
        assert_eq!(
            super::words_overrule(reading, *vocabulary_type, *confidence),
            *expected,
            "{reading:?} against {vocabulary_type:?} at {confidence}"
        );
    }
}
