"""The web display in a real headless chromium, for tests: the display node from this working tree, the
page's counters and per-frame records, and how far its sound and picture are apart.

DisplaySession is written to be reused with any source of face_frames / audio_out / talk_status: a test
peer, or the real talking-face node in an end-to-end test.
"""
import base64
import os
import re
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from conftest import REPO_ROOT
from ros_helpers import Process

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
SYNC_TOLERANCE_MS = 40.0

# The page's counters without its per-frame and per-chunk lists (cheap to poll over WebDriver).
COUNTERS_JS = "const {frames, audio, ...counters} = window.lightlipStats; return counters;"


def sync_offsets(stats):
    """Audio-to-picture offsets (ms) of the frames the page showed while their audio played."""
    return np.array([frame["offsetMs"] for frame in stats["frames"] if frame["offsetMs"] is not None])


class DisplaySession:
    """face_display_node (from this working tree) and a headless chromium showing its page.

    Start the publishers of face_frames, audio_out and talk_status with the same ROS env and
    namespace, wait on the page's counters with wait_until(), then read stats().
    """

    def __init__(self, ros_env, tmp_path, namespace="", parameters=(), window_size=(720, 640)):
        if not (os.access(CHROMIUM, os.X_OK) and os.access(CHROMEDRIVER, os.X_OK)):
            pytest.skip(f"the browser test drives the system chromium: {CHROMIUM} and {CHROMEDRIVER} "
                        "are not installed (Debian: apt-get install chromium chromium-driver)")
        self.tmp_path = Path(tmp_path)
        self.env = dict(ros_env, PYTHONPATH=os.pathsep.join(
            [str(REPO_ROOT)] + [p for p in [ros_env.get("PYTHONPATH")] if p]))
        self.ros_args = ["-r", f"__ns:=/{namespace}"] if namespace else []
        self.parameters = ["-p", "port:=0"] + [arg for value in parameters for arg in ("-p", value)]
        self.window_size = window_size
        self.node = None
        self.driver = None
        self.url = None
        self.exit_code = None

    def __enter__(self):
        argv = [sys.executable, "-m", "lightlip_ros.face_display_node", "--ros-args",
                *self.ros_args, *self.parameters]
        self.node = Process(argv, self.env, self.tmp_path / "face_display.log")
        try:
            self.url = self._wait_for_url(timeout_s=30)
            self.driver = start_chromium(self.window_size)
            self.driver.get(self.url)
            self.wait_until(lambda c: c["connected"] and c["clockSynced"] and c["audioState"] == "running",
                            20, "the page to connect, map the clocks and start its AudioContext")
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self

    def __exit__(self, *exc):
        if self.driver is not None:
            self.driver.quit()
            self.driver = None
        if self.node is not None and self.exit_code is None:
            self.exit_code = self.node.stop()

    def _wait_for_url(self, timeout_s):
        deadline = time.monotonic() + timeout_s
        while True:
            found = re.search(r"face display at (http://\S+/)", self.node.output())
            if found:
                return found.group(1)
            if self.node.popen.poll() is not None:
                raise AssertionError(f"face_display_node exited:\n{self.node.output()}")
            if time.monotonic() > deadline:
                raise AssertionError(f"face_display_node logged no address in {timeout_s} s:\n"
                                     f"{self.node.output()}")
            time.sleep(0.05)

    def counters(self):
        return self.driver.execute_script(COUNTERS_JS)

    def stats(self):
        return self.driver.execute_script("return window.lightlipStats")

    def wait_until(self, predicate, timeout_s, what):
        """Polls the page's counters until predicate(counters) is true; fails after timeout_s."""
        deadline = time.monotonic() + timeout_s
        while True:
            counters = self.counters()
            if predicate(counters):
                return counters
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out after {timeout_s} s waiting for {what}; page: {counters}\n"
                                     f"display log:\n{self.node.output()}")
            time.sleep(0.1)

    def status_line(self):
        return self.driver.find_element("id", "status").text

    def canvas_bgr(self):
        """What the page's canvas holds, as a BGR array."""
        data_url = self.driver.execute_script("return document.getElementById('face').toDataURL('image/png')")
        png = base64.b64decode(data_url.split(",", 1)[1])
        return cv2.imdecode(np.frombuffer(png, np.uint8), cv2.IMREAD_COLOR)

    def screenshot(self, path):
        self.driver.save_screenshot(str(path))


def start_chromium(window_size):
    """Headless system chromium through the system chromedriver (nothing downloaded)."""
    os.environ.setdefault("SE_OFFLINE", "true")  # selenium-manager must not look for drivers online
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage",
                     "--autoplay-policy=no-user-gesture-required",
                     f"--window-size={window_size[0]},{window_size[1]}"):
        options.add_argument(argument)
    return webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)


def describe_offsets(offsets):
    return (f"p5 {np.percentile(offsets, 5):+.1f} ms, median {np.median(offsets):+.1f} ms, "
            f"p95 {np.percentile(offsets, 95):+.1f} ms, min {offsets.min():+.1f}, max {offsets.max():+.1f}; "
            f"{100 * np.mean(np.abs(offsets) <= SYNC_TOLERANCE_MS):.1f} % within +-{SYNC_TOLERANCE_MS:.0f} ms")
