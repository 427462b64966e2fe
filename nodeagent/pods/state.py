"""What the agent remembers of each pod on disk, so that a restarted agent (also after kill -9)
adopts running pods instead of restarting them: their namespace, IP, and each container's
process identity, restart count and last state."""
from __future__ import annotations

import json
import os
import shutil


class PodState:
    def __init__(self, root: str, uid: str):
        self.dir = os.path.join(root, uid)
        self.path = os.path.join(self.dir, "state.json")
        self.data: dict = {"uid": uid, "netns": "", "pod_ip": "", "start_time": "", "containers": {}}

    @classmethod
    def load_all(cls, root: str) -> dict[str, "PodState"]:
        out = {}
        try:
            uids = os.listdir(root)
        except FileNotFoundError:
            return out
        for uid in uids:
            st = cls(root, uid)
            try:
                with open(st.path) as f:
                    st.data = json.load(f)
            except (OSError, ValueError):
                continue
            out[uid] = st
        return out

    def save(self) -> None:
        os.makedirs(self.dir, exist_ok=True)
        tmp = self.path + ".tmp"
        with open(tmp, "w") as f:
            json.dump(self.data, f)
        os.replace(tmp, self.path)

    def remove(self) -> None:
        shutil.rmtree(self.dir, ignore_errors=True)

    def log_path(self, container: str) -> str:
        return os.path.join(self.dir, "logs", f"{container}.log")
