//! The agents switchyard registers on first start: the five the seed workflow names, and the
//! main agent, which does the steps of any workflow that name no subagent.
//!
//! The capability keywords are what `auto-select` steps and task analysis match requirements
//! against, so they use the seed's own vocabulary (D1, KV, runes, form actions, Vitest...). This
//! module is data only: it never reads the store, and an operator's later edits to an agent win
//! over these defaults because they are loaded only when no agent exists yet.

/// One default agent: its name, what it is for, and its capability keywords (lowercase).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DefaultAgent {
    pub name: &'static str,
    pub description: &'static str,
    pub capabilities: &'static [&'static str],
}

pub const DEFAULT_AGENTS: &[DefaultAgent] = &[
    DefaultAgent {
        name: "context-fetcher",
        description: "Reads the task, the code base and its documentation to work out what a task needs \
                      before anyone writes code, and hands that context to the specialists.",
        capabilities: &[
            "analysis",
            "task analysis",
            "context",
            "requirements",
            "codebase",
            "code search",
            "search",
            "documentation",
            "documentation lookup",
            "specifications",
            "research",
            "architecture",
            "conventions",
            "existing code",
            "file discovery",
        ],
    },
    DefaultAgent {
        name: "cloudflare-specialist",
        description: "Builds the backend on Cloudflare's edge: Workers, D1 schemas and migrations, KV caching, \
                      R2 storage, Queues and API routes, with security headers and rate limiting.",
        capabilities: &[
            "cloudflare",
            "workers",
            "d1",
            "database",
            "schema",
            "migrations",
            "sql",
            "kv",
            "caching",
            "r2",
            "storage",
            "file uploads",
            "queues",
            "durable objects",
            "api routes",
            "endpoints",
            "wrangler",
            "bindings",
            "deployment",
            "rate limiting",
            "security headers",
            "error handling",
            "edge",
            "performance optimization",
        ],
    },
    DefaultAgent {
        name: "sveltekit-specialist",
        description: "Builds the SvelteKit front end: routes, layouts and Svelte 5 components with runes, \
                      load functions, form actions with validation, and accessible markup.",
        capabilities: &[
            "svelte",
            "sveltekit",
            "components",
            "routes",
            "routing",
            "runes",
            "stores",
            "pages",
            "layouts",
            "load functions",
            "data loading",
            "forms",
            "form actions",
            "validation",
            "accessibility",
            "ui",
            "css",
            "styling",
            "responsive design",
            "client-side state",
            "progressive enhancement",
            "ssr",
        ],
    },
    DefaultAgent {
        name: "project-manager",
        description: "Checks that the specialists' work fits together: walks the integration checklist, \
                      coordinates the agents and reviews what each one reports.",
        capabilities: &[
            "verification",
            "integration",
            "checklist",
            "coordination",
            "review",
            "planning",
            "task tracking",
            "progress reporting",
            "requirements review",
            "acceptance criteria",
            "risk assessment",
            "feedback aggregation",
            "summaries",
            "handoffs",
        ],
    },
    DefaultAgent {
        name: "test-runner",
        description: "Runs the test suites (Vitest unit tests, integration tests, Playwright end-to-end tests) \
                      and Lighthouse, and reports the counts, failures and performance figures.",
        capabilities: &[
            "tests",
            "testing",
            "vitest",
            "playwright",
            "lighthouse",
            "e2e",
            "unit tests",
            "integration tests",
            "end-to-end tests",
            "component tests",
            "coverage",
            "performance",
            "bundle size",
            "cold start",
            "cross-browser testing",
            "mobile responsiveness",
            "regression",
            "test reports",
        ],
    },
    DefaultAgent {
        name: "main-agent",
        description: "The agent running an Agent OS flow: does every step that names no subagent, such as \
                      planning the product, writing specs and task lists, git branches and commits, and recaps.",
        capabilities: &[
            "agent os",
            "instruction files",
            "product planning",
            "mission",
            "roadmap",
            "specs",
            "spec writing",
            "task breakdown",
            "task lists",
            "git",
            "branches",
            "commits",
            "pull requests",
            "recaps",
        ],
    },
];

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;

    #[test]
    fn the_five_seed_agents_are_there_in_seed_order_then_the_main_agent() {
        let names: Vec<&str> = DEFAULT_AGENTS.iter().map(|a| a.name).collect();
        assert_eq!(
            names,
            [
                "context-fetcher",
                "cloudflare-specialist",
                "sveltekit-specialist",
                "project-manager",
                "test-runner",
                crate::core::registry::workflow::DEFAULT_MAIN_AGENT
            ]
        );
    }

    #[test]
    fn names_are_unique_lowercase_words_joined_by_hyphens() {
        let mut seen = BTreeSet::new();
        for agent in DEFAULT_AGENTS {
            let name = agent.name;
            assert!(seen.insert(name), "{name} is listed twice");
            assert!(name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-'), "{name}");
            assert!(!name.starts_with('-') && !name.ends_with('-') && !name.contains("--"), "{name}");
        }
    }

    #[test]
    fn every_agent_has_a_short_description_and_ten_to_twenty_five_capabilities() {
        for agent in DEFAULT_AGENTS {
            assert!((20..=300).contains(&agent.description.len()), "{}: {}", agent.name, agent.description);
            assert!(!agent.description.contains("  "), "{}: line continuation left spaces", agent.name);
            assert!((10..=25).contains(&agent.capabilities.len()), "{}: {}", agent.name, agent.capabilities.len());
        }
    }

    #[test]
    fn capabilities_are_trimmed_lowercase_and_unique_within_their_agent() {
        for agent in DEFAULT_AGENTS {
            let mut seen = BTreeSet::new();
            for &capability in agent.capabilities {
                assert!(seen.insert(capability), "{}: {capability} is listed twice", agent.name);
                assert!(!capability.is_empty() && capability.trim() == capability, "{}: {capability:?}", agent.name);
                assert_eq!(capability, capability.to_lowercase(), "{}", agent.name);
                assert!(!capability.contains("  "), "{}: {capability:?}", agent.name);
            }
        }
    }
}
