//! The sample documents the schema and Rust must agree on: the free and
//! the premium sample, each edited one way, with the issue paths Rust must
//! report (none when both accept it).

use rbee_schemas::Platform;
use serde_json::{Value, json};

use super::{FREE, PREMIUM, doc, remove};

/// A sample document and the issue paths Rust must report (none: valid).
pub struct Case {
    pub name: String,
    pub doc: Value,
    pub expect: Vec<&'static str>,
}

fn case(name: &str, base: &str, edit: impl FnOnce(&mut Value), expect: &[&'static str]) -> Case {
    let mut doc = doc(base);
    edit(&mut doc);
    Case {
        name: name.to_owned(),
        doc,
        expect: expect.to_vec(),
    }
}

pub fn cases() -> Vec<Case> {
    let long_id = "a".repeat(100);
    let too_long_id = "a".repeat(101);
    vec![
        // Accepted by both.
        case("the free sample", FREE, |_| {}, &[]),
        case("the premium sample", PREMIUM, |_| {}, &[]),
        case(
            "id of exactly 100 characters",
            FREE,
            |d| d["id"] = long_id.into(),
            &[],
        ),
        case(
            "id of digits and dashes",
            FREE,
            |d| d["id"] = "0-9--1".into(),
            &[],
        ),
        case("no depends", FREE, |d| remove(d, "depends"), &[]),
        case(
            "null makedepends",
            FREE,
            |d| d["makedepends"] = Value::Null,
            &[],
        ),
        case(
            "pre-release with build",
            FREE,
            |d| d["version"] = "1.0.0-alpha.1+sha.0a1".into(),
            &[],
        ),
        case(
            "license with exception",
            FREE,
            |d| d["license"] = "GPL-2.0-only WITH Classpath-exception-2.0".into(),
            &[],
        ),
        case(
            "license or-later",
            FREE,
            |d| d["license"] = "GPL-2.0+".into(),
            &[],
        ),
        case(
            "license nested",
            FREE,
            |d| d["license"] = "((MIT OR ISC)) AND (Zlib)".into(),
            &[],
        ),
        case(
            "source without tag or branch",
            FREE,
            |d| remove(&mut d["source"], "tag"),
            &[],
        ),
        case(
            "every platform",
            FREE,
            |d| d["platforms"] = Platform::names().into(),
            &[],
        ),
        case(
            "no max context length",
            FREE,
            |d| remove(&mut d["capabilities"], "max_context_length"),
            &[],
        ),
        case(
            "integer amount",
            PREMIUM,
            |d| d["pricing"]["amount"] = 5.into(),
            &[],
        ),
        case(
            "tiny amount",
            PREMIUM,
            |d| d["pricing"]["amount"] = 0.01.into(),
            &[],
        ),
        case(
            "binary name with extension",
            FREE,
            |d| d["binary_name"] = "llm-worker-rbee.exe".into(),
            &[],
        ),
        case(
            "description over two lines",
            FREE,
            |d| d["description"] = "One line.\n\tAnd another.".into(),
            &[],
        ),
        case(
            "git+https source",
            FREE,
            |d| d["source"]["url"] = "git+https://github.com/rbee/x.git".into(),
            &[],
        ),
        case(
            "name of non-ASCII letters",
            FREE,
            |d| d["name"] = "Wörker für Ünïcode (CPU) 工人".into(),
            &[],
        ),
        // Refused by both, with the path Rust reports.
        case(
            "name with NUL",
            FREE,
            |d| d["name"] = "LLM\u{0}Worker".into(),
            &["$.name"],
        ),
        case(
            "name with an ANSI escape",
            FREE,
            |d| d["name"] = "\u{1b}[2JLLM".into(),
            &["$.name"],
        ),
        case(
            "name over two lines",
            FREE,
            |d| d["name"] = "LLM\nWorker".into(),
            &["$.name"],
        ),
        case(
            "name too long",
            FREE,
            |d| d["name"] = "n".repeat(101).into(),
            &["$.name"],
        ),
        case(
            "description with a bidi override",
            FREE,
            |d| d["description"] = "harmless \u{202e}exe.txt".into(),
            &["$.description"],
        ),
        case(
            "description with a bidi isolate",
            FREE,
            |d| d["description"] = "\u{2068}x".into(),
            &["$.description"],
        ),
        case(
            "description with CR",
            FREE,
            |d| d["description"] = "a\rb".into(),
            &["$.description"],
        ),
        case(
            "description too long",
            FREE,
            |d| d["description"] = "d".repeat(2001).into(),
            &["$.description"],
        ),
        case(
            "javascript source url",
            FREE,
            |d| d["source"]["url"] = "javascript://x/%0Aalert(1)".into(),
            &["$.source.url"],
        ),
        case(
            "http source url",
            FREE,
            |d| d["source"]["url"] = "http://github.com/rbee/x.git".into(),
            &["$.source.url"],
        ),
        case(
            "git+ssh source url",
            FREE,
            |d| d["source"]["url"] = "git+ssh://git@github.com/rbee/x.git".into(),
            &["$.source.url"],
        ),
        case(
            "purchase url with a control character",
            PREMIUM,
            |d| d["pricing"]["purchase_url"] = "https://rbee.dev/\u{7}".into(),
            &["$.pricing.purchase_url"],
        ),
        case(
            "depends with NUL",
            FREE,
            |d| d["depends"] = json!(["gcc\u{0}"]),
            &["$.depends[0]"],
        ),
        case(
            "too many depends",
            FREE,
            |d| d["depends"] = json!(vec!["x"; 101]),
            &["$.depends"],
        ),
        case(
            "version too long",
            FREE,
            |d| d["version"] = format!("1.0.0-{}", "a".repeat(123)).into(),
            &["$.version"],
        ),
        case(
            "id upper-case",
            FREE,
            |d| d["id"] = "LLM-worker".into(),
            &["$.id"],
        ),
        case(
            "id with a leading dash",
            FREE,
            |d| d["id"] = "-hello".into(),
            &["$.id"],
        ),
        case(
            "id with a trailing dash",
            FREE,
            |d| d["id"] = "hello-".into(),
            &["$.id"],
        ),
        case(
            "id underscore",
            FREE,
            |d| d["id"] = "llm_worker".into(),
            &["$.id"],
        ),
        case("id empty", FREE, |d| d["id"] = "".into(), &["$.id"]),
        case(
            "id of 101 characters",
            FREE,
            |d| d["id"] = too_long_id.into(),
            &["$.id"],
        ),
        case("id a number", FREE, |d| d["id"] = 7.into(), &["$.id"]),
        case(
            "family with a space",
            FREE,
            |d| d["family"] = "llm worker".into(),
            &["$.family"],
        ),
        case(
            "unknown backend",
            FREE,
            |d| d["backend"] = "tpu".into(),
            &["$.backend"],
        ),
        case(
            "backend upper-case",
            FREE,
            |d| d["backend"] = "CPU".into(),
            &["$.backend"],
        ),
        case(
            "blank name",
            FREE,
            |d| d["name"] = "   ".into(),
            &["$.name"],
        ),
        case(
            "null description",
            FREE,
            |d| d["description"] = Value::Null,
            &["$.description"],
        ),
        case(
            "version with v",
            FREE,
            |d| d["version"] = "v0.1.0".into(),
            &["$.version"],
        ),
        case(
            "version of two parts",
            FREE,
            |d| d["version"] = "0.1".into(),
            &["$.version"],
        ),
        case(
            "version leading zero",
            FREE,
            |d| d["version"] = "01.0.0".into(),
            &["$.version"],
        ),
        case(
            "version pre-release leading zero",
            FREE,
            |d| d["version"] = "1.0.0-01".into(),
            &["$.version"],
        ),
        case(
            "version a number",
            FREE,
            |d| d["version"] = 1.into(),
            &["$.version"],
        ),
        case(
            "license empty",
            FREE,
            |d| d["license"] = "".into(),
            &["$.license"],
        ),
        case(
            "license lower-case operator",
            FREE,
            |d| d["license"] = "MIT or ISC".into(),
            &["$.license"],
        ),
        case(
            "license trailing operator",
            FREE,
            |d| d["license"] = "MIT AND".into(),
            &["$.license"],
        ),
        case(
            "license slash",
            FREE,
            |d| d["license"] = "MIT/ISC".into(),
            &["$.license"],
        ),
        case(
            "license plus inside",
            FREE,
            |d| d["license"] = "GPL+2".into(),
            &["$.license"],
        ),
        case(
            "license two ids",
            FREE,
            |d| d["license"] = "MIT ISC".into(),
            &["$.license"],
        ),
        case(
            "license tab",
            FREE,
            |d| d["license"] = "MIT\tOR ISC".into(),
            &["$.license"],
        ),
        case(
            "implementation blank",
            FREE,
            |d| d["implementation"] = "".into(),
            &["$.implementation"],
        ),
        // rbee-keeper decodes these as closed enums: another value would
        // break its whole worker list.
        case(
            "implementation outside rbee's enum",
            FREE,
            |d| d["implementation"] = "go".into(),
            &["$.implementation"],
        ),
        case(
            "build system outside rbee's enum",
            FREE,
            |d| d["build_system"] = "npm".into(),
            &["$.build_system"],
        ),
        case(
            "every other value rbee's enums accept",
            FREE,
            |d| {
                d["implementation"] = "cpp".into();
                d["build_system"] = "cmake".into();
                d["capabilities"]["max_context_length"] = json!(u32::MAX);
            },
            &[],
        ),
        case(
            "context length over u32",
            FREE,
            |d| d["capabilities"]["max_context_length"] = json!(4_294_967_296_u64),
            &["$.capabilities.max_context_length"],
        ),
        case(
            "build system array",
            FREE,
            |d| d["build_system"] = json!(["cargo"]),
            &["$.build_system"],
        ),
        case(
            "source a string",
            FREE,
            |d| d["source"] = "git".into(),
            &["$.source"],
        ),
        case(
            "source scp url",
            FREE,
            |d| d["source"]["url"] = "git@github.com:rbee/x.git".into(),
            &["$.source.url"],
        ),
        case(
            "source url without rest",
            FREE,
            |d| d["source"]["url"] = "https://".into(),
            &["$.source.url"],
        ),
        case(
            "source blank tag",
            FREE,
            |d| d["source"]["tag"] = " ".into(),
            &["$.source.tag"],
        ),
        case(
            "source tag and branch",
            FREE,
            |d| d["source"]["branch"] = "main".into(),
            &["$.source"],
        ),
        case(
            "source extra field",
            FREE,
            |d| d["source"]["commit"] = "abc".into(),
            &["$.source.commit"],
        ),
        case(
            "no platforms",
            FREE,
            |d| d["platforms"] = json!([]),
            &["$.platforms"],
        ),
        case(
            "platforms a string",
            FREE,
            |d| d["platforms"] = "linux-x86_64".into(),
            &["$.platforms"],
        ),
        case(
            "OCI name as platform",
            FREE,
            |d| d["platforms"][1] = "linux/arm64".into(),
            &["$.platforms[1]"],
        ),
        case(
            "platform a number",
            FREE,
            |d| d["platforms"][0] = 1.into(),
            &["$.platforms[0]"],
        ),
        case(
            "platform twice",
            FREE,
            |d| d["platforms"][3] = "linux-x86_64".into(),
            &["$.platforms[3]"],
        ),
        case(
            "format with a space",
            FREE,
            |d| d["capabilities"]["supported_formats"][0] = "g guf".into(),
            &["$.capabilities.supported_formats[0]"],
        ),
        case(
            "context length zero",
            FREE,
            |d| d["capabilities"]["max_context_length"] = 0.into(),
            &["$.capabilities.max_context_length"],
        ),
        case(
            "context length negative",
            FREE,
            |d| d["capabilities"]["max_context_length"] = (-1).into(),
            &["$.capabilities.max_context_length"],
        ),
        case(
            "context length fractional",
            FREE,
            |d| d["capabilities"]["max_context_length"] = 1.5.into(),
            &["$.capabilities.max_context_length"],
        ),
        case(
            "context length a string",
            FREE,
            |d| d["capabilities"]["max_context_length"] = "4096".into(),
            &["$.capabilities.max_context_length"],
        ),
        case(
            "streaming a string",
            FREE,
            |d| d["capabilities"]["streaming"] = "yes".into(),
            &["$.capabilities.streaming"],
        ),
        case(
            "capabilities extra",
            FREE,
            |d| d["capabilities"]["gpu"] = true.into(),
            &["$.capabilities.gpu"],
        ),
        case(
            "depends with a space",
            FREE,
            |d| d["depends"] = json!(["gcc libs"]),
            &["$.depends[0]"],
        ),
        case(
            "depends a string",
            FREE,
            |d| d["depends"] = "gcc-libs".into(),
            &["$.depends"],
        ),
        case(
            "makedepends a number",
            FREE,
            |d| d["makedepends"][1] = 3.into(),
            &["$.makedepends[1]"],
        ),
        case(
            "binary name a path",
            FREE,
            |d| d["binary_name"] = "../bin/x".into(),
            &["$.binary_name"],
        ),
        case(
            "binary name hidden",
            FREE,
            |d| d["binary_name"] = ".x".into(),
            &["$.binary_name"],
        ),
        case(
            "binary name too long",
            FREE,
            |d| d["binary_name"] = "x".repeat(256).into(),
            &["$.binary_name"],
        ),
        case(
            "install path empty",
            FREE,
            |d| d["install_path"] = "".into(),
            &["$.install_path"],
        ),
        case(
            "not installable",
            FREE,
            |d| d["distribution"]["binary_available"] = false.into(),
            &[],
        ),
        case(
            "neither source nor binary",
            FREE,
            |d| {
                d["distribution"]["binary_available"] = false.into();
                d["distribution"]["source_available"] = false.into();
            },
            &["$.distribution"],
        ),
        case(
            "requires license a string",
            FREE,
            |d| d["distribution"]["requires_license"] = "true".into(),
            &["$.distribution.requires_license"],
        ),
        case(
            "premium without pricing",
            PREMIUM,
            |d| remove(d, "pricing"),
            &["$.pricing"],
        ),
        case(
            "premium with null pricing",
            PREMIUM,
            |d| d["pricing"] = Value::Null,
            &["$.pricing"],
        ),
        case(
            "free worker with pricing",
            PREMIUM,
            |d| d["distribution"]["requires_license"] = false.into(),
            &["$.pricing"],
        ),
        case(
            "amount zero",
            PREMIUM,
            |d| d["pricing"]["amount"] = 0.into(),
            &["$.pricing.amount"],
        ),
        case(
            "amount negative",
            PREMIUM,
            |d| d["pricing"]["amount"] = (-5.0).into(),
            &["$.pricing.amount"],
        ),
        case(
            "amount a string",
            PREMIUM,
            |d| d["pricing"]["amount"] = "29.99".into(),
            &["$.pricing.amount"],
        ),
        case(
            "currency lower-case",
            PREMIUM,
            |d| d["pricing"]["currency"] = "eur".into(),
            &["$.pricing.currency"],
        ),
        case(
            "currency four letters",
            PREMIUM,
            |d| d["pricing"]["currency"] = "EURO".into(),
            &["$.pricing.currency"],
        ),
        case(
            "purchase url http",
            PREMIUM,
            |d| d["pricing"]["purchase_url"] = "http://rbee.dev/buy".into(),
            &["$.pricing.purchase_url"],
        ),
        case(
            "purchase url without host",
            PREMIUM,
            |d| d["pricing"]["purchase_url"] = "https:///buy".into(),
            &["$.pricing.purchase_url"],
        ),
        case(
            "pricing extra",
            PREMIUM,
            |d| d["pricing"]["vat"] = 0.2.into(),
            &["$.pricing.vat"],
        ),
        case(
            "pricing a number",
            PREMIUM,
            |d| d["pricing"] = 29.into(),
            &["$.pricing"],
        ),
        case(
            "unknown field",
            FREE,
            |d| d["homepage"] = "https://rbee.dev".into(),
            &["$.homepage"],
        ),
        case(
            "odd unknown key",
            FREE,
            |d| d["build-system"] = "cargo".into(),
            &["$[\"build-system\"]"],
        ),
        case("an array", FREE, |d| *d = json!([]), &["$"]),
        case(
            "several problems at once",
            PREMIUM,
            |d| {
                d["id"] = "X".into();
                d["platforms"] = json!(["linux-x86_64", "beos-x86"]);
                d["pricing"]["currency"] = "euro".into();
                remove(d, "binary_name");
            },
            &[
                "$.id",
                "$.platforms[1]",
                "$.binary_name",
                "$.pricing.currency",
            ],
        ),
    ]
}
