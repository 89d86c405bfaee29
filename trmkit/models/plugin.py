"""Registers the built-in architectures through `register_models`, as a third party would.

The model modules (and torch) are imported inside the hook, which runs only when a model is
first looked up: loading the plugins for `trmkit tasks` stays torch-free.
"""

from trmkit.hookspecs import hookimpl


@hookimpl
def register_models(register):
    from trmkit.models.act import ACTModel
    from trmkit.models.hrm import HRMConfig, HRMCore
    from trmkit.models.transformer import TransformerConfig, TransformerCore
    from trmkit.models.trm import TRMConfig, TRMCore
    from trmkit.models.trm_multiz import TRMMultiZConfig, TRMMultiZCore
    from trmkit.models.trm_singlez import TRMSingleZConfig, TRMSingleZCore

    def act(core):  # the factory: the core wrapped in the ACT carry and loss head
        return lambda cfg: ACTModel(core(cfg))

    register(
        "trm",
        act(TRMCore),
        TRMConfig,
        "Tiny Recursive Model: shared 2-block net (attention or MLP-t), latents y and z",
    )
    register(
        "trm-singlez", act(TRMSingleZCore), TRMSingleZConfig, "TRM ablation with a single latent z"
    )
    register("trm-multiz", act(TRMMultiZCore), TRMMultiZConfig, "TRM ablation with six z latents")
    register(
        "hrm",
        act(HRMCore),
        HRMConfig,
        "Hierarchical Reasoning Model: separate H and L stacks, 1-step gradient",
    )
    register(
        "transformer",
        act(TransformerCore),
        TransformerConfig,
        "Transformer baseline: one deep stack per supervision step",
    )


@hookimpl
def register_components(register):
    from trmkit.models.blocks import ATTENTION, MLP_T, SWIGLU
    from trmkit.models.losses import ACTStepLoss

    # the per-step loss (docs/engine.md "Per-step losses")
    register("step_loss", "act", ACTStepLoss(), "TRM's loss: lm + 0.5 (q_halt + q_continue)")
    register(
        "step_loss",
        "act_no_continue",
        ACTStepLoss(continue_loss=False),
        "lm + 0.5 q_halt: the ACT loss without the continue term (EqR, URM)",
    )

    register("mixer", "attention", ATTENTION, "multi-head self-attention with RoPE (TRM, HRM)")
    register("mixer", "mlp_t", MLP_T, "SwiGLU across the sequence axis (TRM-MLP, MLP-mixer)")
    register("mlp", "swiglu", SWIGLU, "SwiGLU channel MLP, width round(expansion D 2/3) to 256")
