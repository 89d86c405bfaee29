"""TRM with a single latent (paper Table 2, "single z"): n times z <- net(z, x), then
z <- net(z) with no injection; the heads read z. Same T-1 no-grad cycles as TRM."""

import torch

from trmkit.models.trm import TRMCore


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
