import { Router } from 'express';

export const conversationsRouter = Router();
