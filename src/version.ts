/** The sqld version whose wire behaviour this build follows (reported by `GET /version`). */
export const SERVER_VERSION = '0.24.33';
