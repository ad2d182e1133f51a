//! The catalog's web pages over HTTP (issue 16): the worker list with its
//! filter, search and sort links, a worker's page (versions with the
//! yanked one marked, install commands for a platform, the PKGBUILD,
//! price and purchase link, charts after real downloads), the download
//! overview, the assets, caching headers, the strict CSP, HTML error
//! pages, and markup from the registry shown as text. The same in a real
//! browser: `web_browser.rs`.

mod common;
mod web_support;

use common::catalog::{TestCatalog, WORKER};
use web_support::*;

const HTML: &str = "text/html; charset=utf-8";

/// The ids of the worker cards on a list page, in order.
fn cards(html: &str) -> Vec<String> {
    html.split("<li class=\"card\" data-worker=\"")
        .skip(1)
        .map(|rest| rest.split('"').next().unwrap().to_owned())
        .collect()
}

/// Whether any `Vary` header of `reply` names `User-Agent`.
fn varies_by_user_agent(reply: &common::catalog::Reply) -> bool {
    reply.headers.get_all("vary").iter().any(|v| {
        v.to_str()
            .unwrap_or("")
            .to_ascii_lowercase()
            .contains("user-agent")
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_worker_list_filters_searches_and_sorts_with_plain_links() {
    let (catalog, _fixtures) = catalog_with_worker_set().await;
    let list = catalog.get("/").await.expect(200);
    assert_eq!(list.header("content-type"), HTML);
    assert_eq!(
        list.header("content-security-policy"),
        rbee_catalog::web::CSP
    );
    assert!(
        !list
            .header("content-security-policy")
            .contains("unsafe-inline")
    );
    assert_eq!(list.header("x-frame-options"), "DENY");
    let html = list.text();
    // By name by default; the example's latest is 0.1.0 (0.2.0 is yanked).
    assert_eq!(
        cards(&html),
        [WORKER, HOSTILE, CUDA, METAL, PREMIUM],
        "sorted by name: Hello, Hostile, llm-..., premium-..."
    );
    let example = section(&html, &format!("data-worker=\"{WORKER}\""), "</li>\n");
    assert!(
        example.contains("0.1.0") && !example.contains("0.2.0"),
        "{example}"
    );
    assert!(example.contains(&format!("href=\"/worker/{WORKER}\"")));
    for p in [
        "linux-x86_64",
        "linux-aarch64",
        "macos-aarch64",
        "windows-x86_64",
    ] {
        assert!(example.contains(&format!("<li>{p}</li>")), "{p}: {example}");
    }
    let premium = section(&html, &format!("data-worker=\"{PREMIUM}\""), "</li>\n");
    assert!(
        premium.contains("badge-premium") && premium.contains("49.00 EUR"),
        "{premium}"
    );
    assert_eq!(occurrences(&html, "class=\"badge badge-premium\""), 1);

    // Filters are links that keep the rest of the query; each one works.
    assert!(html.contains("href=\"/?backend=cuda\""), "backend link");
    assert!(
        html.contains("href=\"/?platform=macos-x86_64\""),
        "platform link"
    );
    assert!(html.contains("href=\"/?premium=premium\""), "premium link");
    let cuda = catalog.get("/?backend=cuda").await.expect(200).text();
    assert_eq!(cards(&cuda), [CUDA, PREMIUM]);
    assert!(
        cuda.contains("href=\"/?backend=cuda&#38;platform=linux-x86_64\""),
        "a second filter keeps the first"
    );
    let linux = catalog
        .get("/?platform=linux-x86_64")
        .await
        .expect(200)
        .text();
    assert!(
        !cards(&linux).contains(&METAL.to_owned()),
        "{:?}",
        cards(&linux)
    );
    assert_eq!(cards(&linux).len(), 4);
    let mac = catalog
        .get("/?platform=macos-aarch64")
        .await
        .expect(200)
        .text();
    assert_eq!(cards(&mac).len(), 5);
    let none = catalog
        .get("/?platform=macos-x86_64")
        .await
        .expect(200)
        .text();
    assert!(cards(&none).is_empty() && none.contains("No worker matches"));
    let premium_only = catalog.get("/?premium=premium").await.expect(200).text();
    assert_eq!(cards(&premium_only), [PREMIUM]);
    let free = catalog
        .get("/?premium=free&backend=cuda")
        .await
        .expect(200)
        .text();
    assert_eq!(cards(&free), [CUDA]);

    // Search: id, name or description, any case; the form keeps filters.
    let apple = catalog.get("/?q=APPLE+silicon").await.expect(200).text();
    assert_eq!(cards(&apple), [METAL]);
    assert!(
        apple.contains("value=\"APPLE silicon\""),
        "the search box keeps the text"
    );
    let both = catalog
        .get("/?q=llm&backend=metal")
        .await
        .expect(200)
        .text();
    assert_eq!(cards(&both), [METAL]);
    assert!(
        both.contains("<input type=\"hidden\" name=\"backend\" value=\"metal\">"),
        "the search form carries the backend filter"
    );

    // Sorting: most downloaded first after downloads; newest is stable.
    download(&catalog, CUDA, "0.2.0", "linux-x86_64", 2, 0).await;
    download(&catalog, METAL, "0.2.0", "macos-aarch64", 1, 2).await;
    let popular = catalog.get("/?sort=downloads").await.expect(200).text();
    assert_eq!(&cards(&popular)[..2], [CUDA, METAL]);
    let card = section(&popular, &format!("data-worker=\"{CUDA}\""), "</li>\n");
    assert!(card.contains("<dd class=\"downloads\">2</dd>"), "{card}");
    assert!(popular.contains("aria-current=\"true\">Most downloaded<"));
    assert_eq!(
        cards(&catalog.get("/?sort=newest").await.expect(200).text()).len(),
        5
    );

    // A bad filter is a 400 page, not a 500 nor JSON.
    for bad in [
        "/?backend=tpu",
        "/?platform=amiga",
        "/?sort=size",
        "/?premium=maybe",
    ] {
        let reply = catalog.get(bad).await.expect(400);
        assert_eq!(reply.header("content-type"), HTML, "{bad}");
        assert!(reply.text().contains("Bad request"), "{bad}");
    }

    // Caching like the API: a strong ETag, 304 when it matches.
    let first = catalog.get("/?backend=cuda").await.expect(200);
    let etag = first.header("etag");
    assert!(etag.starts_with('"') && etag.len() > 2, "{etag}");
    assert!(
        first
            .header("cache-control")
            .starts_with("public, max-age=")
    );
    let again = catalog
        .get_with("/?backend=cuda", &[("if-none-match", &etag)])
        .await
        .expect(304);
    assert!(again.body.is_empty());
    catalog.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_script_in_a_description_renders_as_text() {
    let catalog = TestCatalog::embedded().await;
    let _fixture = publish_hostile(&catalog).await;
    for path in ["/".to_owned(), format!("/worker/{HOSTILE}")] {
        let html = catalog.get(&path).await.expect(200).text();
        assert!(
            !html.contains("<script>window"),
            "{path}: the script is markup:\n{html}"
        );
        assert!(!html.contains("<b>bold"), "{path}");
        assert!(!html.contains("<img src=x"), "{path}");
        assert!(
            html.contains(&escaped(HOSTILE_DESCRIPTION)),
            "{path}: the description is shown as text:\n{html}"
        );
        assert!(
            html.contains(&escaped(HOSTILE_NAME)),
            "{path}: the name as text"
        );
        // The only script is the page's own file.
        assert_eq!(occurrences(&html, "<script"), 1, "{path}");
        assert!(html.contains("<script src=\"/assets/catalog-"), "{path}");
    }
    catalog.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_page_shows_versions_install_commands_pkgbuild_and_downloads() {
    let (catalog, _fixtures) = catalog_with_worker_set().await;
    let host = catalog.host();
    let linux_chrome =
        "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 Chrome/130.0 Safari/537.36";
    let page = catalog
        .get_with(
            &format!("/worker/{WORKER}"),
            &[("user-agent", linux_chrome)],
        )
        .await
        .expect(200);
    assert_eq!(page.header("content-type"), HTML);
    assert!(varies_by_user_agent(&page), "commands follow the browser");
    let html = page.text();
    // Versions newest first, the yanked one marked with its reason.
    let v2 = html.find("data-version=\"0.2.0\"").expect("0.2.0 listed");
    let v1 = html.find("data-version=\"0.1.0\"").expect("0.1.0 listed");
    assert!(v2 < v1, "newest first");
    assert!(html.contains("<tbody class=\"version yanked\" data-version=\"0.2.0\">"));
    let yanked = section(&html, "data-version=\"0.2.0\"", "</tbody>");
    assert!(yanked.contains("badge-yanked"), "{yanked}");
    assert!(yanked.contains(YANK_REASON), "{yanked}");
    let current = section(&html, "data-version=\"0.1.0\"", "</tbody>");
    assert!(current.contains(">latest<"), "{current}");
    assert_eq!(
        occurrences(current, "<code class=\"digest\""),
        4,
        "one row per build"
    );
    assert!(current.contains("sha256:"));
    assert!(
        current.contains("<time datetime=\"2026-01-01T00:00:00Z\">2026-01-01 00:00 UTC</time>"),
        "{current}"
    );
    // Install commands for the browser's platform, the latest unyanked version.
    assert!(
        html.contains("Install 0.1.0 for <span class=\"platform\">linux-x86_64</span>"),
        "{html}"
    );
    let url = &catalog.url;
    assert!(
        html.contains(&format!(
            "rbee-worker --catalog {url} install {WORKER}@0.1.0"
        )),
        "the installer is pointed at this catalog (not its default): {html}"
    );
    assert!(html.contains(&format!(
        "oras pull --plain-http --platform linux/amd64 {host}/rbee/{WORKER}:0.1.0"
    )));
    assert!(html.contains(&format!(
        "crane blob --insecure {host}/rbee/{WORKER}@sha256:"
    )));
    assert!(
        html.contains("data-copy=\"install-rbee\" hidden"),
        "copy buttons wait for the script"
    );
    // Another platform by link, and a version by link.
    let arm = catalog
        .get(&format!("/worker/{WORKER}?platform=linux-aarch64"))
        .await
        .expect(200);
    assert!(
        !varies_by_user_agent(&arm),
        "an explicit platform does not vary"
    );
    assert!(arm.text().contains("--platform linux/arm64"));
    let old = catalog
        .get(&format!(
            "/worker/{WORKER}?version=0.2.0&platform=windows-x86_64"
        ))
        .await
        .expect(200)
        .text();
    assert!(old.contains("This version is yanked"));
    assert!(old.contains(&format!("--catalog {url} install {WORKER}@0.2.0")));
    assert!(old.contains("--platform windows/amd64"));
    catalog
        .get(&format!("/worker/{WORKER}?version=9.9.9"))
        .await
        .expect(404);
    catalog
        .get(&format!("/worker/{WORKER}?platform=amiga"))
        .await
        .expect(400);
    // Metadata and the PKGBUILD of the latest version.
    assert!(html.contains("<dt>Streaming</dt>"));
    assert!(html.contains("GPL-3.0-or-later") || html.contains("<dt>License</dt>"));
    assert!(html.contains("<summary>PKGBUILD of 0.1.0</summary>"));
    assert!(html.contains("pkgname=hello-worker-rbee-cpu"));
    assert!(html.contains(&format!("href=\"/workers/{WORKER}/PKGBUILD\"")));
    // No downloads yet: the charts say so.
    assert!(html.contains("data-total=\"0\""));
    assert!(html.contains("No downloads in this period."));

    // After downloads the charts have data.
    download(&catalog, WORKER, "0.1.0", "linux-x86_64", 2, 0).await;
    download(&catalog, WORKER, "0.1.0", "windows-x86_64", 1, 2).await;
    let html = catalog
        .get(&format!("/worker/{WORKER}?platform=linux-x86_64"))
        .await
        .expect(200)
        .text();
    assert!(
        html.contains("<strong class=\"total\">3</strong> downloads"),
        "{html}"
    );
    let per_day = section(&html, "<figure class=\"chart\" id=\"per-day\"", "</figure>");
    assert!(per_day.contains("data-total=\"3\""), "{per_day}");
    assert!(
        per_day.contains("data-value=\"3\""),
        "today's column: {per_day}"
    );
    assert_eq!(occurrences(per_day, "<rect class=\"bar\""), 30, "30 days");
    let platforms = section(
        &html,
        "<figure class=\"chart\" id=\"by-platform\"",
        "</figure>",
    );
    assert!(
        platforms.contains(">linux-x86_64: 2</title>"),
        "{platforms}"
    );
    assert!(
        platforms.contains(">windows-x86_64: 1</title>"),
        "{platforms}"
    );

    // A premium worker: badge, price, purchase link, licensed commands.
    let premium = catalog
        .get(&format!("/worker/{PREMIUM}"))
        .await
        .expect(200)
        .text();
    assert!(premium.contains("badge badge-premium"));
    assert!(premium.contains("<strong class=\"price\">49.00 EUR</strong>"));
    assert!(premium.contains(&format!("<a class=\"button\" href=\"{PURCHASE_URL}\"")));
    assert!(premium.contains(&format!(
        "RBEE_WORKER_LICENSE=rbee_lic_... rbee-worker --catalog {url} install {PREMIUM}@1.0.0"
    )));
    assert!(premium.contains(&format!("{host}/rbee-premium/{PREMIUM}:1.0.0")));
    catalog.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_stats_page_assets_and_error_pages() {
    let (catalog, _fixtures) = catalog_with_worker_set().await;
    let empty = catalog.get("/stats").await.expect(200);
    assert_eq!(empty.header("content-type"), HTML);
    assert!(empty.text().contains("No downloads yet."));
    download(&catalog, CUDA, "0.2.0", "linux-x86_64", 2, 0).await;
    download(&catalog, WORKER, "0.1.0", "linux-aarch64", 1, 2).await;
    let html = catalog.get("/stats").await.expect(200).text();
    assert!(html.contains("<strong class=\"total\">3</strong> downloads in the last 30 days"));
    let top = section(
        &html,
        "<figure class=\"chart\" id=\"top-workers\"",
        "</figure>",
    );
    assert!(top.find(CUDA).unwrap() < top.find(WORKER).unwrap(), "{top}");
    let per_day = section(&html, "<figure class=\"chart\" id=\"per-day\"", "</figure>");
    assert!(per_day.contains("data-total=\"3\""), "{per_day}");
    let clients = section(
        &html,
        "<figure class=\"chart\" id=\"by-client\"",
        "</figure>",
    );
    assert!(clients.contains(">curl: 3</title>"), "{clients}");
    let recent = section(&html, "<table class=\"recent\"", "</table>");
    assert_eq!(occurrences(recent, "<tr><td>"), 3, "{recent}");
    assert!(!recent.contains("127.0.0.1"), "no client data");
    assert!(
        catalog
            .get("/stats?days=7")
            .await
            .expect(200)
            .text()
            .contains("aria-current=\"true\">7 days<")
    );
    catalog.get("/stats?days=0").await.expect(400);

    // The stylesheet under its content hash, cached for a year.
    let list = catalog.get("/").await.expect(200).text();
    let css = list
        .split("<link rel=\"stylesheet\" href=\"")
        .nth(1)
        .and_then(|s| s.split('"').next())
        .unwrap()
        .to_owned();
    assert!(
        css.starts_with("/assets/catalog-") && css.ends_with(".css"),
        "{css}"
    );
    let sheet = catalog.get(&css).await.expect(200);
    assert_eq!(sheet.header("content-type"), "text/css; charset=utf-8");
    assert_eq!(
        sheet.header("cache-control"),
        "public, max-age=31536000, immutable"
    );
    assert!(sheet.text().contains("prefers-color-scheme: dark"));
    let etag = sheet.header("etag");
    catalog
        .get_with(&css, &[("if-none-match", &etag)])
        .await
        .expect(304);
    catalog
        .get("/assets/catalog-0000000000000000.css")
        .await
        .expect(404);

    // Error pages are HTML with the API's status.
    let missing = catalog.get("/worker/no-such-worker").await.expect(404);
    assert_eq!(missing.header("content-type"), HTML);
    assert!(missing.text().contains("Worker not found"));
    assert_eq!(
        missing.header("content-security-policy"),
        rbee_catalog::web::CSP
    );
    catalog.get("/worker/Not_An_Id").await.expect(400);
    // The JSON routes keep their CSP, which forbids everything.
    let json = catalog.get("/v1/workers").await.expect(200);
    assert_eq!(
        json.header("content-security-policy"),
        "default-src 'none'; frame-ancestors 'none'"
    );
    catalog.stop().await;
}
