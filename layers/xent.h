/* Softmax cross-entropy: the local loss of every stage's head. */
#ifndef NK_XENT_H
#define NK_XENT_H

#include <stdint.h>

/* Mean cross-entropy of softmax(logits [n][k]) against labels y [n]. When dlogits is not NULL it
 * receives d(mean loss)/d(logits) = (softmax - onehot) / n; when correct is not NULL it receives
 * the number of samples whose arg-max logit is the label. */
double xent(const float *logits, const int32_t *y, int n, int k, float *dlogits, int *correct);

/* Cross-entropy of one sample's logits [k] against label y (log-sum-exp, stable). */
double xent_one(const float *logits, int32_t y, int k);

#endif
