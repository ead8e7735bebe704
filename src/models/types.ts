/** Types shared by models, services and workers. */

/** The messaging channels the product answers on. */
export type Channel = 'whatsapp' | 'instagram';
