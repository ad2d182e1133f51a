//! The operations a client runs: pushes (monolithic, streamed, chunked),
//! manifest PUTs, tag moves, deletes, mounts and checked pulls.

use bytes::Bytes;
use reqwest::StatusCode;
use serde_json::{Value, json};
use std::sync::Mutex;

use crate::check::{blob_checks, manifest_checks, run_check};
use crate::model::{Expect, ManifestModel, POOL, RepoModel, Rng, sha256};
use crate::{Answer, Soak};

pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const OCI_EMPTY: &str = "application/vnd.oci.empty.v1+json";
pub const LAYER: &str = "application/vnd.oci.image.layer.v1.tar";
pub const TAGS: [&str; 4] = ["t0", "t1", "t2", "latest"];
/// Per repository, manifests beyond this many are deleted again.
pub const MAX_MANIFESTS: usize = 24;

/// Pushes pool blob `id` into `repo`, monolithic, streamed or in chunks.
/// Returns whether the push was acknowledged (`None`: a violation).
pub async fn push_blob(soak: &Soak, rng: &mut Rng, repo: &str, id: usize) -> Option<bool> {
    let (digest, data) = &soak.pool[id];
    let what = format!("push {digest} into {repo}");
    let mode = rng.below(3);
    if mode == 0 {
        let answer = soak
            .send(
                soak.http
                    .post(soak.url(&format!("/v2/{repo}/blobs/uploads/?digest={digest}")))
                    .body(data.clone()),
            )
            .await;
        return soak.acked(&answer, StatusCode::CREATED, &what);
    }
    let answer = soak
        .send(
            soak.http
                .post(soak.url(&format!("/v2/{repo}/blobs/uploads/"))),
        )
        .await;
    if !soak.acked(&answer, StatusCode::ACCEPTED, &what)? {
        return Some(false);
    }
    let mut session = location(&answer)?;
    let mut last = None;
    if mode == 2 && data.len() > 1 {
        // Chunks of random sizes, each with its Content-Range.
        let mut start = 0;
        while start < data.len() - 1 {
            let end = (start + 1 + rng.below(data.len() / 2 + 1)).min(data.len() - 1);
            let answer = soak
                .send(
                    soak.http
                        .patch(soak.url(&session))
                        .header("content-range", format!("{start}-{}", end - 1))
                        .body(data.slice(start..end)),
                )
                .await;
            if !soak.acked(&answer, StatusCode::ACCEPTED, &what)? {
                return Some(false);
            }
            session = location(&answer)?;
            start = end;
        }
        last = Some(start);
    }
    let sep = if session.contains('?') { '&' } else { '?' };
    let mut put = soak
        .http
        .put(soak.url(&format!("{session}{sep}digest={digest}")));
    put = match last {
        Some(start) => put
            .header("content-range", format!("{start}-{}", data.len() - 1))
            .body(data.slice(start..)),
        None => put.body(data.clone()),
    };
    let answer = soak.send(put).await;
    soak.acked(&answer, StatusCode::CREATED, &what)
}

pub fn location(answer: &Answer) -> Option<String> {
    let (_, headers, _) = answer.as_ref()?;
    Some(headers.get("location")?.to_str().ok()?.to_owned())
}

/// Ensures blobs `ids` are in the repository, pushing those the model does
/// not know as present. `Some(true)` when all are acknowledged.
pub async fn ensure_blobs(
    soak: &Soak,
    rng: &mut Rng,
    model: &Mutex<RepoModel>,
    repo: &str,
    ids: &[usize],
) -> Option<bool> {
    for &id in ids {
        let digest = &soak.pool[id].0;
        let expect = model.lock().unwrap().blobs.get(digest).copied();
        if expect == Some(Expect::Present) && rng.chance(70) {
            continue;
        }
        let acked = push_blob(soak, rng, repo, id).await?;
        let mut m = model.lock().unwrap();
        let e = m.blobs.entry(digest.clone()).or_insert(Expect::Absent);
        *e = e.pushed(acked);
        if !acked {
            return Some(false);
        }
    }
    Some(true)
}

/// One random operation of client `client`. Returns whether it was
/// acknowledged; `None` when it produced a violation.
pub async fn operation(soak: &Soak, rng: &mut Rng, client: usize, n: u64) -> Option<bool> {
    let r = rng.below(2);
    let repo = Soak::repo_name(client, r);
    let model = &soak.models[client][r];
    let mut roll = rng.below(100);
    if roll < 25 && model.lock().unwrap().present_manifests().len() > MAX_MANIFESTS {
        // Enough manifests: delete the oldest instead of pushing one more.
        roll = 35;
    }
    match roll {
        // Push a new manifest, sometimes a referrer, by tag or by digest.
        0..=24 => {
            let ids = [rng.below(POOL), rng.below(POOL), rng.below(POOL)];
            let layers = 1 + rng.below(2);
            if !ensure_blobs(soak, rng, model, &repo, &ids[..=layers]).await? {
                return Some(false);
            }
            let subject = {
                let m = model.lock().unwrap();
                let present = m.present_manifests();
                (rng.chance(30) && !present.is_empty())
                    .then(|| present[rng.below(present.len())].clone())
                    .map(|d| (d.clone(), m.manifests[&d].body.len()))
            };
            let descriptor = |id: usize, media_type: &str| {
                let (digest, data) = &soak.pool[id];
                json!({"mediaType": media_type, "digest": digest, "size": data.len()})
            };
            let mut manifest = json!({
                "schemaVersion": 2,
                "mediaType": OCI_MANIFEST,
                "config": descriptor(ids[0], OCI_EMPTY),
                "layers": ids[1..=layers].iter().map(|&i| descriptor(i, LAYER)).collect::<Vec<Value>>(),
                "annotations": {"soak": format!("c{client}-{n}")},
            });
            if let Some((digest, size)) = &subject {
                manifest["subject"] =
                    json!({"mediaType": OCI_MANIFEST, "digest": digest, "size": size});
                manifest["artifactType"] = json!("application/vnd.example.soak");
            }
            let body = Bytes::from(serde_json::to_vec(&manifest).unwrap());
            let digest = sha256(&body);
            let tag = rng.chance(70).then(|| TAGS[rng.below(TAGS.len())]);
            let answer = soak
                .send(
                    soak.http
                        .put(soak.url(&format!("/v2/{repo}/manifests/{}", tag.unwrap_or(&digest))))
                        .header("content-type", OCI_MANIFEST)
                        .body(body.clone()),
                )
                .await;
            let acked = soak.acked(
                &answer,
                StatusCode::CREATED,
                &format!("put manifest {digest} in {repo}"),
            )?;
            let mut m = model.lock().unwrap();
            let entry = m.manifests.entry(digest.clone()).or_insert(ManifestModel {
                expect: Expect::Absent,
                body,
                subject: subject.map(|(d, _)| d),
                blobs: ids[..=layers]
                    .iter()
                    .map(|&i| soak.pool[i].0.clone())
                    .collect(),
            });
            entry.expect = entry.expect.pushed(acked);
            m.order.push(digest.clone());
            if let Some(tag) = tag {
                m.set_tag(tag, Some(digest), acked);
            }
            Some(acked)
        }
        // Move a tag to an existing manifest: PUT it again under the tag.
        // Its blobs may have been deleted from the repository since, and
        // then the PUT must be refused.
        25..=34 => {
            let (digest, body, blobs) = {
                let m = model.lock().unwrap();
                let present = m.present_manifests();
                if present.is_empty() {
                    return Some(true);
                }
                let d = present[rng.below(present.len())].clone();
                let blobs: Vec<Expect> = m.manifests[&d]
                    .blobs
                    .iter()
                    .map(|b| m.blobs.get(b).copied().unwrap_or(Expect::Absent))
                    .collect();
                (d.clone(), m.manifests[&d].body.clone(), blobs)
            };
            let tag = TAGS[rng.below(TAGS.len())];
            let answer = soak
                .send(
                    soak.http
                        .put(soak.url(&format!("/v2/{repo}/manifests/{tag}")))
                        .header("content-type", OCI_MANIFEST)
                        .body(body),
                )
                .await;
            let what = format!("tag {repo}:{tag} as {digest}");
            let refused = matches!(&answer, Some((StatusCode::BAD_REQUEST, _, b))
                if String::from_utf8_lossy(b).contains("MANIFEST_BLOB_UNKNOWN"));
            if blobs.contains(&Expect::Absent) || (refused && blobs.contains(&Expect::Either)) {
                // Refused, and nothing changed.
                soak.acked(&answer, StatusCode::BAD_REQUEST, &what)?;
                return Some(answer.is_some());
            }
            let acked = soak.acked(&answer, StatusCode::CREATED, &what)?;
            model.lock().unwrap().set_tag(tag, Some(digest), acked);
            Some(acked)
        }
        // Delete a manifest by digest: always the oldest beyond the cap,
        // else a random one now and then.
        35..=42 => {
            let digest = {
                let m = model.lock().unwrap();
                let present = m.present_manifests();
                if present.is_empty() {
                    return Some(true);
                }
                if present.len() > MAX_MANIFESTS {
                    present[0].clone()
                } else {
                    present[rng.below(present.len())].clone()
                }
            };
            let answer = soak
                .send(
                    soak.http
                        .delete(soak.url(&format!("/v2/{repo}/manifests/{digest}"))),
                )
                .await;
            let acked = soak.acked(
                &answer,
                StatusCode::ACCEPTED,
                &format!("delete manifest {digest} in {repo}"),
            )?;
            let mut m = model.lock().unwrap();
            m.manifest_deleted(&digest, acked);
            m.forget_old_deletes();
            Some(acked)
        }
        // Delete a tag.
        43..=46 => {
            let tag = TAGS[rng.below(TAGS.len())];
            let settled_absent = model
                .lock()
                .unwrap()
                .tags
                .get(tag)
                .is_none_or(|s| s.len() == 1 && s.contains(&None));
            if settled_absent {
                return Some(true);
            }
            let answer = soak
                .send(
                    soak.http
                        .delete(soak.url(&format!("/v2/{repo}/manifests/{tag}"))),
                )
                .await;
            let want_known = model
                .lock()
                .unwrap()
                .tags
                .get(tag)
                .is_some_and(|s| !s.contains(&None));
            let acked = match &answer {
                // The tag may have gone with an unknown delete: 404 is fine then.
                Some((StatusCode::NOT_FOUND, _, _)) if !want_known => true,
                _ => soak.acked(
                    &answer,
                    StatusCode::ACCEPTED,
                    &format!("delete tag {repo}:{tag}"),
                )?,
            };
            model.lock().unwrap().set_tag(tag, None, acked);
            Some(acked)
        }
        // Delete a blob link.
        47..=54 => {
            let digest = {
                let m = model.lock().unwrap();
                let present = m.present_blobs();
                if present.is_empty() {
                    return Some(true);
                }
                present[rng.below(present.len())].clone()
            };
            let answer = soak
                .send(
                    soak.http
                        .delete(soak.url(&format!("/v2/{repo}/blobs/{digest}"))),
                )
                .await;
            let acked = soak.acked(
                &answer,
                StatusCode::ACCEPTED,
                &format!("delete blob {digest} in {repo}"),
            )?;
            let mut m = model.lock().unwrap();
            let e = m.blobs.entry(digest).or_insert(Expect::Present);
            *e = e.deleted(acked);
            Some(acked)
        }
        // Mount a blob another client has.
        55..=62 => {
            let other = rng.below(soak.models.len());
            let other_r = rng.below(2);
            let digest = {
                let m = soak.models[other][other_r].lock().unwrap();
                let present = m.present_blobs();
                if present.is_empty() {
                    return Some(true);
                }
                present[rng.below(present.len())].clone()
            };
            let from = Soak::repo_name(other, other_r);
            let answer = soak
                .send(soak.http.post(soak.url(&format!(
                    "/v2/{repo}/blobs/uploads/?mount={digest}&from={from}"
                ))))
                .await;
            let acked = match &answer {
                // The other client deleted it meanwhile: a plain upload
                // session was opened instead, which we cancel.
                Some((StatusCode::ACCEPTED, _, _)) => {
                    let loc = location(&answer)?;
                    let cancel = soak.send(soak.http.delete(soak.url(&loc))).await;
                    soak.acked(&cancel, StatusCode::NO_CONTENT, "cancel an upload")?;
                    return Some(true);
                }
                _ => soak.acked(
                    &answer,
                    StatusCode::CREATED,
                    &format!("mount {digest} into {repo}"),
                )?,
            };
            let mut m = model.lock().unwrap();
            let e = m.blobs.entry(digest).or_insert(Expect::Absent);
            *e = e.pushed(acked);
            Some(acked)
        }
        // Push a pool blob.
        63..=72 => {
            let id = rng.below(POOL);
            ensure_blobs(soak, rng, model, &repo, &[id]).await
        }
        // Pull a blob or a manifest and check it against the model now.
        _ => {
            let checks = if rng.chance(50) {
                blob_checks(soak, client, r)
            } else {
                manifest_checks(soak, client, r)
            };
            if checks.is_empty() {
                return Some(true);
            }
            let check = &checks[rng.below(checks.len())];
            // A wrong answer is a violation (recorded by the check), not
            // a failed operation; no answer is an unknown one.
            Some(run_check(soak, check, true).await.is_some())
        }
    }
}
