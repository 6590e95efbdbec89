"""The [CLS]-only last layer gives the stock forward's logits and gradients."""

import pytest
import torch

from bertx.models.heads import build_classifier
from bertx.models.cls_only import disable_cls_only_last_layer, enable_cls_only_last_layer
from bertx.tasks import TASKS


@pytest.mark.parametrize("dropout", [0.0])
def test_same_logits_and_gradients(tiny_bert, dropout):
    torch.manual_seed(0)
    model = build_classifier(tiny_bert, TASKS["classification"], ["a", "b", "c"], dropout=dropout)
    ids = torch.randint(5, 40, (4, 9))
    mask = torch.ones_like(ids)
    mask[1, 5:] = 0  # padding in some rows
    mask[3, 2:] = 0
    batch = {"input_ids": ids, "attention_mask": mask, "labels": torch.tensor([0, 2, 1, 1])}

    def run():
        model.zero_grad()
        out = model(**batch)
        out.loss.backward()
        grads = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
        return out.logits.detach(), grads

    stock_logits, stock_grads = run()
    assert enable_cls_only_last_layer(model)
    fast_logits, fast_grads = run()
    torch.testing.assert_close(fast_logits, stock_logits, atol=1e-5, rtol=1e-5)
    assert fast_grads.keys() == stock_grads.keys()
    for name in stock_grads:
        torch.testing.assert_close(fast_grads[name], stock_grads[name], atol=1e-5, rtol=1e-4, msg=name)
    state_keys = set(model.state_dict())
    disable_cls_only_last_layer(model)
    assert set(model.state_dict()) == state_keys
    torch.testing.assert_close(model(**batch).logits, stock_logits)


def test_left_alone_when_not_a_cls_head(tiny_bert):
    from transformers import AutoModelForTokenClassification

    model = AutoModelForTokenClassification.from_pretrained(tiny_bert, num_labels=3)
    assert not enable_cls_only_last_layer(model)
