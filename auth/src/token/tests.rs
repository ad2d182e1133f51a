//! One test per attack on the verifier, and the happy paths.

use base64::Engine as _;
use jsonwebtoken::{EncodingKey, Header};
use serde_json::{Value, json};

use super::*;
use crate::grant::{PublicNamespaces, Role, Rule, grant};
use crate::scope::Action;

const ISS: &str = "rbee-token-service";
const AUD: &str = "rbee-registry";

struct Fixture {
    issuer: Issuer,
    verifier: Verifier,
}

fn fixture() -> Fixture {
    let (key, _) = SigningKey::generate().unwrap();
    let verifier = Verifier::new([key.public()], ISS, AUD);
    Fixture {
        issuer: Issuer::new(key, ISS, AUD),
        verifier,
    }
}

fn repo(s: &str) -> Repository {
    Repository::parse(s).unwrap()
}

fn pull(s: &str) -> Access {
    Access::Repository(repo(s), Action::Pull)
}

fn scopes(list: &[&str]) -> Vec<Scope> {
    list.iter().map(|s| Scope::parse(s).unwrap()).collect()
}

/// Claims as JSON, valid unless a test changes them.
fn claims(f: &Fixture) -> Value {
    let now = unix_now();
    json!({
        "iss": ISS, "sub": "lic_1", "aud": AUD,
        "exp": now + 60, "nbf": now - 5, "iat": now, "jti": "j",
        "access": [{"type": "repository", "name": "rbee-premium/a", "actions": ["pull"]}],
        "license": "lic_1",
        "_kid": f.issuer.key().kid(),
    })
}

/// Signs `claims` with the fixture's real key and the given header.
fn sign(f: &Fixture, mut header: Header, mut claims: Value) -> String {
    claims.as_object_mut().unwrap().remove("_kid");
    if header.kid.is_none() {
        header.kid = Some(f.issuer.key().kid().to_owned());
    }
    jsonwebtoken::encode(&header, &claims, f.issuer.key().encoding()).unwrap()
}

fn b64(v: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v)
}

fn rejected(f: &Fixture, token: &str) -> bool {
    matches!(f.verifier.verify(token), Err(AuthError::Rejected(_)))
}

#[test]
fn an_issued_token_verifies_and_grants_what_it_says() {
    let f = fixture();
    let principal = Principal {
        role: Role::License,
        id: "lic_1".into(),
        rules: vec![Rule::Worker("a".into())],
        expires_at: None,
    };
    let granted = grant(
        Some(&principal),
        &scopes(&["repository:rbee-premium/a:pull,push"]),
        &PublicNamespaces::default(),
    );
    let issued = f
        .issuer
        .issue(Some(&principal), Some("lic_1"), &granted)
        .unwrap();
    assert_eq!(issued.expires_in, 60);
    let token = f.verifier.verify(&issued.token).unwrap();
    assert_eq!(token.subject, "lic_1");
    assert_eq!(token.license.as_deref(), Some("lic_1"));
    assert!(token.allows(&pull("rbee-premium/a")));
    assert!(!token.allows(&Access::Repository(repo("rbee-premium/a"), Action::Push)));
    // A hand-made token with the real key verifies too (the fixture works).
    assert!(
        f.verifier
            .verify(&sign(&f, Header::new(ALGORITHM), claims(&f)))
            .is_ok()
    );
}

#[test]
fn alg_none_is_rejected() {
    let f = fixture();
    let header = json!({"alg": "none", "typ": "JWT", "kid": f.issuer.key().kid()});
    let mut body = claims(&f);
    body.as_object_mut().unwrap().remove("_kid");
    for sig in ["", "AAAA"] {
        let token = format!(
            "{}.{}.{sig}",
            b64(header.to_string().as_bytes()),
            b64(body.to_string().as_bytes())
        );
        assert!(rejected(&f, &token));
    }
}

#[test]
fn hs256_signed_with_the_public_key_is_rejected() {
    let f = fixture();
    let mut body = claims(&f);
    body.as_object_mut().unwrap().remove("_kid");
    let jwk = f.issuer.key().public().to_jwk();
    let jsonwebtoken::jwk::AlgorithmParameters::OctetKeyPair(p) = &jwk.algorithm else {
        unreachable!()
    };
    let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(&p.x)
        .unwrap();
    // Both the raw key and its textual forms, as an attacker would try.
    for secret in [
        raw.clone(),
        p.x.as_bytes().to_vec(),
        serde_json::to_vec(&jwk).unwrap(),
    ] {
        let mut header = Header::new(jsonwebtoken::Algorithm::HS256);
        header.kid = Some(f.issuer.key().kid().to_owned());
        let token =
            jsonwebtoken::encode(&header, &body, &EncodingKey::from_secret(&secret)).unwrap();
        assert!(rejected(&f, &token));
    }
}

#[test]
fn an_unknown_kid_is_rejected() {
    let f = fixture();
    let (other, _) = SigningKey::generate().unwrap();
    let mut body = claims(&f);
    body.as_object_mut().unwrap().remove("_kid");
    let mut header = Header::new(ALGORITHM);
    header.kid = Some(other.kid().to_owned());
    let token = jsonwebtoken::encode(&header, &body, other.encoding()).unwrap();
    assert!(rejected(&f, &token));
    // No kid at all.
    let token =
        jsonwebtoken::encode(&Header::new(ALGORITHM), &body, f.issuer.key().encoding()).unwrap();
    assert!(rejected(&f, &token));
}

#[test]
fn a_jwk_or_jku_header_carrying_another_key_is_rejected() {
    let f = fixture();
    let (attacker, _) = SigningKey::generate().unwrap();
    let mut body = claims(&f);
    body.as_object_mut().unwrap().remove("_kid");
    // Signed by the attacker, with the attacker's key embedded, under our kid.
    let mut header = Header::new(ALGORITHM);
    header.kid = Some(f.issuer.key().kid().to_owned());
    header.jwk = Some(attacker.public().to_jwk());
    let token = jsonwebtoken::encode(&header, &body, attacker.encoding()).unwrap();
    assert!(rejected(&f, &token));
    // Even signed by our key, a header that names a key is refused.
    let mut header = Header::new(ALGORITHM);
    header.jku = Some("https://evil.example/jwks.json".into());
    assert!(rejected(&f, &sign(&f, header, claims(&f))));
    let mut header = Header::new(ALGORITHM);
    header.jwk = Some(f.issuer.key().public().to_jwk());
    assert!(rejected(&f, &sign(&f, header, claims(&f))));
}

#[test]
fn missing_aud_iss_exp_or_any_claim_is_rejected() {
    let f = fixture();
    for claim in ["aud", "iss", "exp", "nbf", "iat", "sub", "jti", "access"] {
        let mut body = claims(&f);
        body.as_object_mut().unwrap().remove(claim);
        assert!(
            rejected(&f, &sign(&f, Header::new(ALGORITHM), body)),
            "{claim}"
        );
    }
}

#[test]
fn expired_beyond_leeway_is_rejected() {
    let f = fixture();
    let now = unix_now();
    let mut body = claims(&f);
    body["exp"] = json!(now - 1);
    assert!(rejected(
        &f,
        &sign(&f, Header::new(ALGORITHM), body.clone())
    ));
    // Within a configured leeway it passes; beyond it, not.
    let lenient = Verifier::new([f.issuer.key().public()], ISS, AUD).with_leeway(30);
    assert!(
        lenient
            .verify(&sign(&f, Header::new(ALGORITHM), body.clone()))
            .is_ok()
    );
    body["exp"] = json!(now - 31);
    assert!(
        lenient
            .verify(&sign(&f, Header::new(ALGORITHM), body))
            .is_err()
    );
}

#[test]
fn a_token_issued_61_seconds_ago_no_longer_works() {
    // What bounds revocation: a token of a license revoked right after
    // issue stops working 60 s later, whatever its holder does.
    let f = fixture();
    let issued = f
        .issuer
        .issue_at(
            unix_now() - 61,
            None,
            None,
            &scopes(&["repository:rbee/a:pull"]),
        )
        .unwrap();
    assert!(rejected(&f, &issued.token));
}

#[test]
fn nbf_in_the_future_is_rejected() {
    let f = fixture();
    let mut body = claims(&f);
    body["nbf"] = json!(unix_now() + 30);
    assert!(rejected(&f, &sign(&f, Header::new(ALGORITHM), body)));
}

#[test]
fn exp_or_nbf_as_strings_are_rejected() {
    let f = fixture();
    let now = unix_now();
    for (claim, value) in [("exp", now + 60), ("nbf", now - 5)] {
        let mut body = claims(&f);
        body[claim] = json!(value.to_string());
        assert!(
            rejected(&f, &sign(&f, Header::new(ALGORITHM), body)),
            "{claim}"
        );
    }
}

#[test]
fn a_token_of_another_audience_or_issuer_is_rejected() {
    let f = fixture();
    let mut body = claims(&f);
    body["aud"] = json!("another-registry");
    assert!(rejected(&f, &sign(&f, Header::new(ALGORITHM), body)));
    let mut body = claims(&f);
    body["aud"] = json!(["another-registry"]);
    assert!(rejected(&f, &sign(&f, Header::new(ALGORITHM), body)));
    let mut body = claims(&f);
    body["iss"] = json!("someone-else");
    assert!(rejected(&f, &sign(&f, Header::new(ALGORITHM), body)));
}

#[test]
fn a_token_for_repository_a_does_not_open_b() {
    let f = fixture();
    let issued = f
        .issuer
        .issue(None, None, &scopes(&["repository:rbee-premium/a:pull"]))
        .unwrap();
    let token = f.verifier.verify(&issued.token).unwrap();
    assert!(token.allows(&pull("rbee-premium/a")));
    assert!(!token.allows(&pull("rbee-premium/b")));
    assert!(!token.allows(&pull("rbee-premium/a/b")));
    assert!(!token.allows(&pull("rbee-premium")));
}

#[test]
fn a_pull_token_does_not_push_or_delete() {
    let f = fixture();
    let issued = f
        .issuer
        .issue(None, None, &scopes(&["repository:rbee/a:pull"]))
        .unwrap();
    let token = f.verifier.verify(&issued.token).unwrap();
    assert!(!token.allows(&Access::Repository(repo("rbee/a"), Action::Push)));
    assert!(!token.allows(&Access::Repository(repo("rbee/a"), Action::Delete)));
    assert!(!token.lists_everything());
}

#[test]
fn a_tampered_payload_is_rejected() {
    let f = fixture();
    let issued = f
        .issuer
        .issue(None, None, &scopes(&["repository:rbee/a:pull"]))
        .unwrap();
    let parts: Vec<&str> = issued.token.split('.').collect();
    let mut body: Value = serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(parts[1])
            .unwrap(),
    )
    .unwrap();
    body["access"][0]["actions"] = json!(["pull", "push"]);
    let forged = format!(
        "{}.{}.{}",
        parts[0],
        b64(body.to_string().as_bytes()),
        parts[2]
    );
    assert!(rejected(&f, &forged));
    assert!(rejected(&f, "not-a-token"));
    assert!(rejected(&f, ""));
}

#[test]
fn a_token_never_outlives_its_credential() {
    let f = fixture();
    let now = unix_now();
    let principal = Principal {
        role: Role::License,
        id: "lic_2".into(),
        rules: vec![],
        expires_at: Some(now + 10),
    };
    let issued = f.issuer.issue_at(now, Some(&principal), None, &[]).unwrap();
    assert_eq!(issued.expires_in, 10);
}

#[test]
fn a_rotated_out_key_still_verifies_while_listed() {
    let (old, _) = SigningKey::generate().unwrap();
    let (new, _) = SigningKey::generate().unwrap();
    let verifier = Verifier::new([new.public(), old.public()], ISS, AUD);
    let by_old = Issuer::new(old, ISS, AUD).issue(None, None, &[]).unwrap();
    assert!(verifier.verify(&by_old.token).is_ok());
    let only_new = Verifier::new([new.public()], ISS, AUD);
    assert!(only_new.verify(&by_old.token).is_err());
}

#[test]
fn a_remembered_token_is_still_checked_against_the_clock() {
    let f = fixture();
    let now = unix_now();
    let issued = f
        .issuer
        .issue_at(now, None, None, &scopes(&["repository:rbee/a:pull"]))
        .unwrap();
    assert!(f.verifier.verify_at(&issued.token, now).is_ok());
    assert_eq!(f.verifier.remembered(), 1);
    // From memory: valid until exp (inclusive, as jsonwebtoken has it),
    // refused after it, and before nbf.
    assert!(f.verifier.verify_at(&issued.token, now + 60).is_ok());
    assert!(rejected_at(&f, &issued.token, now + 61));
    assert!(rejected_at(&f, &issued.token, now - NBF_BACKDATE - 1));
}

#[test]
fn only_the_exact_bytes_of_a_verified_token_skip_the_signature_check() {
    let f = fixture();
    let issued = f
        .issuer
        .issue(None, None, &scopes(&["repository:rbee/a:pull"]))
        .unwrap();
    assert!(f.verifier.verify(&issued.token).is_ok());
    // The same token with one signature character changed, or its payload
    // swapped for a grant on another repository: a full check, refused.
    let mut tampered = issued.token.clone();
    let last = tampered.pop().unwrap();
    tampered.push(if last == 'A' { 'B' } else { 'A' });
    assert!(rejected(&f, &tampered));
    let mut body = claims(&f);
    body.as_object_mut().unwrap().remove("_kid");
    body["access"] =
        json!([{"type": "repository", "name": "rbee-premium/b", "actions": ["pull", "push"]}]);
    let parts: Vec<&str> = issued.token.split('.').collect();
    let swapped = format!(
        "{}.{}.{}",
        parts[0],
        b64(body.to_string().as_bytes()),
        parts[2]
    );
    assert!(rejected(&f, &swapped));
    assert_eq!(
        f.verifier.remembered(),
        1,
        "refused tokens are not remembered"
    );
}

#[test]
fn the_memory_of_verified_tokens_is_bounded() {
    let f = fixture();
    for i in 0..(VERIFIED_CACHE_CAPACITY + 500) {
        let token = f
            .issuer
            .issue(
                None,
                None,
                &scopes(&[&format!("repository:rbee/w{i}:pull")]),
            )
            .unwrap()
            .token;
        assert!(f.verifier.verify(&token).is_ok());
    }
    assert!(f.verifier.remembered() <= VERIFIED_CACHE_CAPACITY);
}

fn rejected_at(f: &Fixture, token: &str, now: u64) -> bool {
    matches!(
        f.verifier.verify_at(token, now),
        Err(AuthError::Rejected(_))
    )
}
