/* crl: every public header in one include. */
#ifndef CRL_CRL_H
#define CRL_CRL_H

#include "actor.h"
#include "base.h"
#include "blas.h"
#include "collect.h"
#include "continual.h"
#include "dataset.h"
#include "env.h"
#include "episode.h"
#include "export.h"
#include "methods.h"
#include "metrics.h"
#include "nn.h"
#include "plot.h"
#include "policy.h"
#include "pool.h"
#include "router.h"
#include "report.h"
#include "replay.h"
#include "reservoir.h"
#include "run.h"
#include "runner.h"
#include "sac.h"
#include "scenario.h"
#include "store.h"
#include "subspace.h"
#include "vecenv.h"
#include "viz.h"

#endif
