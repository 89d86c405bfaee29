"""TRM with a single latent (paper Table 2, "single z"): n times z <- net(z, x), then
z <- net(z) with no injection; the heads read z. Same T-1 no-grad cycles as TRM."""

import attrs
import torch

from trmkit.models.core import OfficialLayout
from trmkit.models.trm import TRM_FIELDS, TRMConfig, TRMCore


@attrs.define(kw_only=True)
class TRMSingleZConfig(TRMConfig):
    official = OfficialLayout(
        arch="recursive_reasoning.trm_singlez@TinyRecursiveReasoningModel_ACTV1",
        tensors={"L_level.": "core.net.", "L_init": "core.z_init"},
        fields=TRM_FIELDS,
        fixed={"mlp": "swiglu"},
        unused=frozenset({"core.y_init"}),
    )


class TRMSingleZCore(TRMCore):
    latent_names = ("z",)

    def recurse(self, latents, x, rope):
        z = latents["z"]

        def cycle(z):
            for _ in range(self.config.l_cycles):
                z = self.net(z, x, rope)
            return self.net(z, None, rope)

        with torch.no_grad():
            for _ in range(self.config.h_cycles - 1):
                z = cycle(z)
        z = cycle(z)
        return {"z": z}, z
