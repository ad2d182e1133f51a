//! A throwaway S3 server for tests: `s3s-fs` (installed by
//! `scripts/install-test-deps.sh`) on a free loopback port, serving a
//! temporary folder with one bucket, stopped when dropped.

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::{S3Options, s3::MIN_PART_SIZE};

/// The bucket every test server has.
pub const BUCKET: &str = "rbee-test";
const ACCESS_KEY: &str = "rbee-test-key";
const SECRET_KEY: &str = "rbee-test-secret";

/// A running `s3s-fs`.
#[derive(Debug)]
pub struct S3TestServer {
    child: Child,
    /// Where it keeps the bucket (a folder per bucket).
    pub root: tempfile::TempDir,
    /// `http://127.0.0.1:PORT`.
    pub endpoint: String,
}

fn binary() -> PathBuf {
    if let Ok(path) = std::env::var("S3S_FS") {
        return path.into();
    }
    let home = std::env::var("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|_| std::env::var("HOME").map(|h| PathBuf::from(h).join(".cargo")))
        .unwrap_or_default();
    let installed = home.join("bin").join("s3s-fs");
    if installed.exists() {
        installed
    } else {
        "s3s-fs".into()
    }
}

impl S3TestServer {
    /// Starts a server and waits (a few seconds at most) until it accepts
    /// connections. Panics when `s3s-fs` is missing, saying how to get it.
    pub fn start() -> S3TestServer {
        let root = tempfile::tempdir().expect("temporary folder");
        std::fs::create_dir(root.path().join(BUCKET)).expect("bucket folder");
        // s3s-fs takes a port, not a socket: take a free one from the OS
        // and hand it over (the window in between is tiny).
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let child = Command::new(binary())
            .args(["--host", "127.0.0.1", "--port", &port.to_string()])
            .args(["--access-key", ACCESS_KEY, "--secret-key", SECRET_KEY])
            .arg(root.path())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!("cannot run s3s-fs ({e}): run scripts/install-test-deps.sh")
            });
        let server = S3TestServer {
            child,
            root,
            endpoint: format!("http://127.0.0.1:{port}"),
        };
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_err() {
            assert!(Instant::now() < deadline, "s3s-fs did not start on {addr}");
            std::thread::sleep(Duration::from_millis(20));
        }
        server
    }

    /// Options for the test bucket under `prefix`, with the smallest part
    /// size S3 allows (so tests cross part boundaries with little data).
    pub fn options(&self, prefix: &str) -> S3Options {
        S3Options {
            bucket: BUCKET.into(),
            prefix: prefix.into(),
            endpoint: Some(self.endpoint.clone()),
            region: Some("us-east-1".into()),
            access_key_id: Some(ACCESS_KEY.into()),
            secret_access_key: Some(SECRET_KEY.into()),
            path_style: true,
            part_size: MIN_PART_SIZE,
        }
    }

    /// The environment a registry process needs for this bucket
    /// (`AWS_*`), with `--storage s3://BUCKET/<prefix>` flags to go with it.
    pub fn process_env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("AWS_ACCESS_KEY_ID", ACCESS_KEY.into()),
            ("AWS_SECRET_ACCESS_KEY", SECRET_KEY.into()),
            ("AWS_REGION", "us-east-1".into()),
        ]
    }

    /// Flags for `rbee-registry serve` to use this bucket under `prefix`.
    pub fn process_args(&self, prefix: &str) -> Vec<String> {
        vec![
            "--storage".into(),
            format!("s3://{BUCKET}/{prefix}"),
            "--s3-endpoint".into(),
            self.endpoint.clone(),
            "--s3-path-style".into(),
            "--s3-part-size-mib".into(),
            "5".into(),
        ]
    }
}

impl S3TestServer {
    /// Stops the server (as an outage would); its folder stays.
    pub fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for S3TestServer {
    fn drop(&mut self) {
        self.stop();
    }
}
