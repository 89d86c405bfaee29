"""TRM with several z latents (reference ``trm_hier6``, paper "multi-scale z").

z is K tensors z_1..z_K (own init vectors, carried as one [B, K, L, D] tensor); L-step i
rewrites z_i = net(sum_j z_j, y + x); then y = net(y, sum_j z_j). Requires n = K.
"""

import attrs
import torch

from trmkit.errors import ConfigError
from trmkit.models.core import OfficialLayout, register_init
from trmkit.models.trm import TRM_FIELDS, TRMConfig, TRMCore


@attrs.define(kw_only=True)
class TRMMultiZConfig(TRMConfig):
    official = OfficialLayout(
        arch="recursive_reasoning.trm_hier6@TinyRecursiveReasoningModel_ACTV1",
        tensors={"L_level.": "core.net.", "H_init": "core.y_init"},
        fields=TRM_FIELDS,
        fixed={"mlp": "swiglu", "num_z": 6},
        rows={"core.z_init": "L{}_init"},  # L1_init..L6_init are the rows of core.z_init
    )

    num_z: int = 6

    def validate(self) -> None:
        super().validate()
        if self.num_z < 1 or self.l_cycles != self.num_z:
            raise ConfigError(
                f"model.l_cycles: the multi-z model needs l_cycles == num_z "
                f"(got {self.l_cycles} and {self.num_z})"
            )


class TRMMultiZCore(TRMCore):
    latent_names = ("y", "z")

    def __init__(self, cfg: TRMMultiZConfig, net=None) -> None:
        super().__init__(cfg, net)
        del self.z_init
        register_init(self, "z", (cfg.num_z, cfg.hidden_size))

    def cycle(self, y, z, x, rope):
        yx = y + x
        zs = list(z.unbind(dim=1))
        for i in range(self.config.l_cycles):
            zs[i] = self.net(torch.stack(zs).sum(0), yx, rope)
        y = self.net(y, torch.stack(zs).sum(0), rope)
        return y, torch.stack(zs, dim=1)
