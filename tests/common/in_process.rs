//! The exporter run in the test's own process (`run_with` on 127.0.0.1:0), with
//! doors to AWS the test makes (the scripted double, or the SDK on a test client):
//! for what a child process cannot show, a panic hook or the running targets.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::{mpsc, Arc};
use std::time::Duration;

use clap::Parser as _;
use ses_identity_exporter::aws::TargetAws;
use ses_identity_exporter::config::{self, Config, Flags};
use ses_identity_exporter::serve::web_config::{WebConfig, WebState};
use ses_identity_exporter::target::fleet::Targets;

use super::get;

/// A running exporter: its address, its targets, and how to stop it.
pub struct InProcess {
    pub runtime: tokio::runtime::Runtime,
    pub addr: SocketAddr,
    pub targets: Targets,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl InProcess {
    /// Runs `config`'s targets through `doors` (one each, in order) until
    /// [`InProcess::shutdown`].
    pub fn start(config: Config, doors: Vec<Arc<dyn TargetAws>>) -> InProcess {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let listener = runtime
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let (handle_tx, handle_rx) = mpsc::channel();
        let task = runtime.spawn(async move {
            ses_identity_exporter::run_with(
                &config,
                WebState::fixed(WebConfig::default()),
                doors,
                vec![listener],
                async {
                    let _ = stopped.await;
                },
                move |targets| {
                    let _ = handle_tx.send(targets);
                },
            )
            .await
            .expect("run succeeded");
        });
        let targets = handle_rx
            .recv_timeout(Duration::from_secs(30))
            .expect("the running targets");
        InProcess {
            runtime,
            addr,
            targets,
            stop: Some(stop),
            task: Some(task),
        }
    }

    pub fn scrape(&self) -> String {
        get(self.addr, "/metrics").text()
    }

    /// Stops it as a signal would and waits until `run_with` returned.
    pub fn shutdown(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            self.runtime.block_on(task).expect("run ended");
        }
    }
}

/// The configuration of an in-process run: `file` (YAML) written as `name` in `dir`,
/// a 1 s poll interval, `--ses.rate 50`, and `flags`.
pub fn config(dir: &Path, name: &str, file: &str, flags: &[&str]) -> Config {
    let path = dir.join(name);
    std::fs::write(&path, file).unwrap();
    let path = path.to_str().unwrap().to_owned();
    let mut args = vec![
        "ses-identity-exporter",
        "--config.file",
        &path,
        "--poll.interval",
        "1s",
        "--ses.rate",
        "50",
    ];
    args.extend_from_slice(flags);
    config::load(Flags::try_parse_from(args).unwrap()).unwrap()
}
