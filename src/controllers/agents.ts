import { Router } from 'express';

export const agentsRouter = Router();
