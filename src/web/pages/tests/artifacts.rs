use super::{artifact, artifact_ids, seed, Fixture};
use crate::store::{ItemStatus, RunStatus};

const PNG: &[u8] = b"\x89PNG\r\n\x1a\nnot really";

#[tokio::test]
async fn artifacts_show_inline_and_are_served_sandboxed_with_their_type() {
    let f = Fixture::new(&[], None).await;
    let id = seed(&f.store, "w", RunStatus::Succeeded, None, &[("s", "k1", ItemStatus::Ok, None, None)]).await;
    std::fs::write(f.path("artifacts/shot.png"), PNG).unwrap();
    std::fs::write(f.path("artifacts/page.html"), "<html><script>alert(1)</script>hi</html>").unwrap();
    std::fs::write(f.path("artifacts/mail.eml"), "Subject: <script>x</script>\r\n\r\nbody").unwrap();
    std::fs::create_dir_all(f.path("artifacts/digests")).unwrap();
    std::fs::write(f.path("artifacts/digests/team.md"), "# Team <img src=x onerror=alert(1)>").unwrap();
    artifact(&f.store, id, "s", "screenshot", &f.path("artifacts/shot.png")).await;
    artifact(&f.store, id, "s", "html", &f.path("artifacts/page.html")).await;
    artifact(&f.store, id, "s", "eml", &f.path("artifacts/mail.eml")).await;
    // Relative to the project folder, as a path may be recorded.
    artifact(&f.store, id, "s", "digest", std::path::Path::new("artifacts/digests/team.md")).await;
    let ids = artifact_ids(&f.store, id).await;

    let body = f.page(&format!("/runs/{id}")).await;
    assert!(body.contains(&format!(r#"<img class="artifact" src="/runs/{id}/artifacts/{}""#, ids[0])), "{body}");
    assert!(body.contains(&format!(r#"<iframe class="artifact" sandbox="" src="/runs/{id}/artifacts/{}""#, ids[1])), "{body}");
    assert!(body.contains("<pre class=\"artifact\">Subject: &lt;script&gt;x&lt;/script&gt;"), "{body}");
    assert!(body.contains("<pre class=\"artifact\"># Team &lt;img src=x onerror=alert(1)&gt;</pre>"), "{body}");
    for a in &ids {
        assert!(body.contains(&format!(r#"<a href="/runs/{id}/artifacts/{a}">"#)), "each has its link: {body}");
    }

    let g = f.get(&format!("/runs/{id}/artifacts/{}", ids[0])).await;
    assert_eq!(g.status, 200);
    assert_eq!(g.headers["content-type"], "image/png");
    assert_eq!(g.headers["x-content-type-options"], "nosniff");
    assert_eq!(g.raw, PNG);
    let g = f.get(&format!("/runs/{id}/artifacts/{}", ids[1])).await;
    assert_eq!(g.headers["content-type"], "text/html; charset=utf-8");
    assert!(g.headers["content-security-policy"].to_str().unwrap().starts_with("sandbox;"), "{:?}", g.headers);
    let g = f.get(&format!("/runs/{id}/artifacts/{}", ids[2])).await;
    assert_eq!(g.headers["content-type"], "text/plain; charset=utf-8");
    assert_eq!(f.get(&format!("/runs/{id}/artifacts/{}", ids[3])).await.status, 200);
}

#[tokio::test]
async fn an_artifact_of_another_run_or_outside_the_artifacts_folder_is_404() {
    let f = Fixture::new(&[], None).await;
    let a = seed(&f.store, "w", RunStatus::Succeeded, None, &[]).await;
    let b = seed(&f.store, "w", RunStatus::Succeeded, None, &[]).await;
    std::fs::write(f.path("secret.txt"), "the user's own file").unwrap();
    std::fs::write(f.path("artifacts/fine.txt"), "fine").unwrap();
    std::os::unix::fs::symlink(f.path("secret.txt"), f.path("artifacts/link.txt")).unwrap();
    artifact(&f.store, a, "s", "eml", &f.path("artifacts/fine.txt")).await;
    artifact(&f.store, a, "s", "eml", &f.path("artifacts/link.txt")).await;
    artifact(&f.store, a, "s", "eml", &f.path("artifacts/../secret.txt")).await;
    artifact(&f.store, a, "s", "eml", std::path::Path::new("artifacts/../secret.txt")).await;
    artifact(&f.store, a, "s", "eml", &f.path("artifacts/gone.txt")).await;
    let ids = artifact_ids(&f.store, a).await;

    assert_eq!(f.get(&format!("/runs/{a}/artifacts/{}", ids[0])).await.status, 200);
    assert_eq!(f.get(&format!("/runs/{b}/artifacts/{}", ids[0])).await.status, 404, "another run's artifact");
    for (i, what) in ids[1..].iter().zip(["a symlink out", "an absolute `..` path", "a relative `..` path", "a missing file"]) {
        let g = f.get(&format!("/runs/{a}/artifacts/{i}")).await;
        assert_eq!(g.status, 404, "{what}");
        assert!(!g.body.contains("the user's own file"), "{what}");
    }
    assert_eq!(f.get(&format!("/runs/{a}/artifacts/999")).await.status, 404);
    // The run page does not read them either.
    let body = f.page(&format!("/runs/{a}")).await;
    assert!(!body.contains("the user's own file"), "{body}");
    assert_eq!(body.matches("The file cannot be shown").count(), 4, "{body}");
}
