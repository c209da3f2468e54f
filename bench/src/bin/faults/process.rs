//! A `daarion` process the fault suite kills and starts again where its
//! clients expect it: the same command, data, settings and port.

use std::{
    path::{Path, PathBuf},
    time::Duration,
};

use daarion_bench::{Daarion, start_on};

pub struct Process {
    pub name: String,
    binary: PathBuf,
    shape: Vec<String>,
    data: PathBuf,
    env: Vec<(&'static str, String)>,
    port: u16,
    /// Where it logs, across restarts.
    log: PathBuf,
    running: Daarion,
}

impl Process {
    /// `binary <shape…>` on `port`, its data in `data` (made if missing),
    /// its log appended to `log`; returned once healthy.
    pub async fn start(
        binary: &Path,
        shape: &[&str],
        data: PathBuf,
        env: Vec<(&'static str, String)>,
        port: u16,
        log: PathBuf,
    ) -> anyhow::Result<Self> {
        std::fs::create_dir_all(&data)?;
        let (running, _) = start_on(binary, shape, &data, &env, port, Some(&log)).await?;
        Ok(Self {
            name: shape.last().copied().unwrap_or_default().to_owned(),
            binary: binary.to_owned(),
            shape: shape.iter().map(|s| (*s).to_owned()).collect(),
            data,
            env,
            port,
            log,
            running,
        })
    }

    pub fn base(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// SIGKILL, then the same command again, as a supervisor would; how
    /// long the new one took to be healthy.
    pub async fn kill_and_restart(&mut self) -> anyhow::Result<Duration> {
        self.running.child.0.kill()?;
        self.running.child.0.wait()?;
        let shape: Vec<&str> = self.shape.iter().map(String::as_str).collect();
        let (running, took) = start_on(
            &self.binary,
            &shape,
            &self.data,
            &self.env,
            self.port,
            Some(&self.log),
        )
        .await?;
        self.running = running;
        Ok(took)
    }

    /// Whether it exited by itself.
    pub fn exited(&mut self) -> bool {
        self.running.child.0.try_wait().ok().flatten().is_some()
    }
}
