// GET /healthz answers 200 once the Theia backend serves HTTP: the readiness path the Coditect
// provisioner probes (coditect.workspaces.k8s.objects.build_pod). Plain JavaScript so that the
// extension needs no TypeScript build of its own.
'use strict';
const { ContainerModule } = require('@theia/core/shared/inversify');
const { BackendApplicationContribution } = require('@theia/core/lib/node/backend-application');

const healthz = {
    configure(app) {
        app.get('/healthz', (_request, response) => {
            response.set('Cache-Control', 'no-store');
            response.json({ status: 'ok' });
        });
    }
};

// Theia's generated backend loads `require(<module>).default`, as compiled TypeScript exports it.
Object.defineProperty(exports, '__esModule', { value: true });
exports.default = new ContainerModule(bind => {
    bind(BackendApplicationContribution).toConstantValue(healthz);
});
