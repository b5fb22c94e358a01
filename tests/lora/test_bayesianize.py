"""bayesianize(): functional TFB on any peft LoRA model — a sequence classifier and a causal
LM (last-token logits restricted to label tokens), tiny random configurations."""

import warnings

import numpy as np
import pytest
import torch

from probest.lora import bayesianize


def _peft(model, targets, task_type=None):
    import peft

    cfg = peft.LoraConfig(r=4, lora_alpha=8, target_modules=targets, lora_dropout=0.0,
                          task_type=task_type)
    with warnings.catch_warnings():  # peft asks transformers 5 a deprecated property
        warnings.filterwarnings("ignore", category=FutureWarning)
        m = peft.get_peft_model(model, cfg)
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():  # a "trained" LoRA: B != 0
        for n, p in m.named_parameters():
            if "lora_B" in n:
                p.normal_(0, 0.3, generator=g)
    return m.eval()


def _anchor(vocab, n=64, length=6, seed=0):
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(1, vocab, (n, length), generator=g)
    mask = torch.ones_like(ids)
    mask[: n // 2, -2:] = 0  # some right padding
    return {"input_ids": ids, "attention_mask": mask}


def test_bayesianize_sequence_classifier():
    import transformers

    with torch.random.fork_rng():
        torch.manual_seed(0)
        cfg = transformers.BertConfig(vocab_size=60, hidden_size=16, num_hidden_layers=2,
                                      num_attention_heads=2, intermediate_size=32, num_labels=3)
        model = _peft(transformers.BertForSequenceClassification(cfg), ["query", "value"],
                      "SEQ_CLS")
    anchor = _anchor(60)
    with torch.no_grad():
        before = model(**anchor).logits
    h = bayesianize(model, anchor, criterion="flip", tol=0.05, n_samples=4, seed=3)
    with torch.no_grad():  # re-parameterised, noise off: outputs unchanged
        assert (model(**anchor).logits - before).abs().max() < 1e-5
    assert 0.0 < h.sigma < 1.0 and h.n_forward > 0
    p0 = before.softmax(-1).argmax(1)
    p = h.predict_proba(anchor).argmax(1)
    assert float((p != p0).float().mean()) <= 0.05  # re-checked: the tolerance holds
    h.remove()
    h2 = bayesianize(model, anchor, criterion="nll", tol=0.02, n_samples=4)
    p2 = h2.predict_proba(anchor).double()
    nll = -p2[torch.arange(len(p0)), p0].log().mean()
    nll0 = -before.double().log_softmax(-1)[torch.arange(len(p0)), p0].mean()
    assert (nll - nll0) / nll0 <= 0.02 + 1e-6


def test_bayesianize_causal_lm_label_tokens():
    import transformers

    with torch.random.fork_rng():
        torch.manual_seed(0)
        cfg = transformers.LlamaConfig(vocab_size=50, hidden_size=16, intermediate_size=32,
                                       num_hidden_layers=2, num_attention_heads=2,
                                       num_key_value_heads=2, max_position_embeddings=32)
        model = _peft(transformers.LlamaForCausalLM(cfg), ["q_proj", "v_proj"], "CAUSAL_LM")
    anchor = _anchor(50, n=32)
    labels = [7, 11]  # e.g. the ids of " yes" and " no"
    h = bayesianize(model, anchor, criterion="flip", tol=0.1, n_samples=3,
                    label_token_ids=labels)
    proba = h.predict_proba(anchor)
    assert proba.shape == (32, 2)
    np.testing.assert_allclose(proba.sum(1).numpy(), 1.0, atol=1e-5)
    with pytest.raises(ValueError, match="label_token_ids"):
        bayesianize(model, anchor)
    with pytest.raises(ValueError, match="criterion"):
        bayesianize(model, anchor, criterion="entropy")
